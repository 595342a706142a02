"""Benchmark the bundles' networks: parameters, time, peak memory.

Each network is built from its bundle's own configs (:func:`mrivol.training.build_network`),
so the numbers are those of what ``mrivol train`` trains.

For each network at a stated input size: number of parameters, median seconds of a forward
pass (eval mode, ``torch.no_grad``: inference) and of a forward + backward pass (train mode,
mean of the output as loss: one training step without the optimizer), after warm-up; and the
peak memory of the run. On CPU the peak is the growth of the process' resident set size (each
network runs in a fresh process, so ``ru_maxrss`` is its own); on CUDA it is
``torch.cuda.max_memory_allocated`` with AMP (float16 autocast). ``cpu s`` is the process CPU
time of one forward + backward (mean): on a shared CPU it is steadier than wall time.

Usage::

    python benchmarks/networks.py                    # CPU, and CUDA with AMP when present
    python benchmarks/networks.py --device cpu --networks brats_seg/agms3d brats_seg/dynunet
    python benchmarks/networks.py --profile gpu          # the gpu profile's network sizes
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEG_INPUT = (1, 4, 64, 64, 64)  # BraTS: 4 modalities, 3 regions (the cpu profile's patch)
CLS_INPUT = (1, 1, 72, 88, 72)  # ad_cls: one T1 scan, the 2 mm MNI brain box


def _dynunet_overrides() -> dict:
    """A plan for BraTS-like cropped brains: nnU-Net rules give 128^3, 6 stages, filters 32..320."""
    from mrivol.planning import plan_from_fingerprint

    fingerprint = {"spacings": [[1.0, 1.0, 1.0]] * 8, "shapes_after_crop": [[140, 170, 140]] * 8}
    return {"plans": plan_from_fingerprint(fingerprint)}


# every network as its bundle builds it (configs/networks/<net>.yaml at the chosen profile)
NETWORKS: dict[str, tuple[str, str, tuple[int, ...], Callable[[], dict]]] = {
    "brats_seg/unet": ("brats_seg", "unet", SEG_INPUT, dict),
    "brats_seg/agms3d": ("brats_seg", "agms3d", SEG_INPUT, dict),
    "brats_seg/dynunet": ("brats_seg", "dynunet", SEG_INPUT, _dynunet_overrides),
    "brats_seg/unetr": ("brats_seg", "unetr", SEG_INPUT, dict),
    "brats_seg/swin_unetr": ("brats_seg", "swin_unetr", SEG_INPUT, dict),
    "ad_cls/densenet_attention": ("ad_cls", "densenet_attention", CLS_INPUT, dict),
}


def build(name: str, profile: str) -> tuple[torch.nn.Module, tuple[int, ...], str]:
    """The bundle's network, its input shape and a note naming the config."""
    from mrivol.training import build_network

    bundle, net, shape, overrides = NETWORKS[name]
    extra = {"roi_size": list(shape[2:])} if bundle == "brats_seg" else {}
    network = build_network(bundle, net, profile=profile, overrides={**extra, **overrides()})
    return network, shape, f"bundles/{bundle}/configs/networks/{net}.yaml ({profile})"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _timed(fn: Callable[[], None], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(
    name: str, device: str, warmup: int, repeats: int, threads: int | None, profile: str
) -> dict:
    """Measure one network in this process; returns one table row."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net, shape, note = build(name, profile)
    net = net.to(device)
    x = torch.randn(*shape, device=device)
    amp = device == "cuda"

    def forward() -> None:
        net.eval()
        with torch.no_grad(), torch.autocast(device, dtype=torch.float16, enabled=amp):
            net(x)

    def forward_backward() -> None:
        net.train()
        net.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.float16, enabled=amp):
            out = net(x)
        out.float().mean().backward()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    baseline = _rss_bytes()
    for _ in range(warmup):
        forward()
        forward_backward()
    fwd = statistics.median(_timed(forward, device) for _ in range(repeats))
    cpu_start = time.process_time()
    fwd_bwd = statistics.median(_timed(forward_backward, device) for _ in range(repeats))
    cpu_fwd_bwd = (time.process_time() - cpu_start) / repeats
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    return {
        "network": name,
        "input": "x".join(str(s) for s in shape),
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        "device": device + (" amp" if amp else ""),
        "forward_s": fwd,
        "forward_backward_s": fwd_bwd,
        "forward_backward_cpu_s": cpu_fwd_bwd,
        "peak_mb": peak / 2**20,
        "note": note,
    }


def _print_table(rows: list[dict]) -> None:
    header = f"{'network':<26} {'input':<13} {'params':>8} {'device':<9} {'fwd s':>7} "
    header += f"{'fwd+bwd s':>9} {'cpu s':>7} {'peak MB':>8}  note"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['network']:<26} {r['input']:<13} {r['params_m']:>7.2f}M {r['device']:<9} "
            f"{r['forward_s']:>7.3f} {r['forward_backward_s']:>9.3f} "
            f"{r['forward_backward_cpu_s']:>7.2f} {r['peak_mb']:>8.0f}  "
            f"{r['note']}"
        )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run each network in a fresh process, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--profile", choices=["cpu", "gpu"], default="cpu", help="the bundles' network sizes"
    )
    args = parser.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "auto" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            parser.error("--device cuda: no CUDA device is visible")
        devices.remove("cuda")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices {devices}")
    rows, failed = [], []
    context = mp.get_context("spawn")
    for device in devices:
        for name in args.networks:
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                future = pool.submit(
                    measure, name, device, args.warmup, args.repeats, args.threads, args.profile
                )
                try:
                    rows.append(future.result())
                except Exception as err:  # report and go on with the other networks
                    failed.append(f"{name} on {device}: {type(err).__name__}: {err}")
            print(f"  done: {name} on {device}", file=sys.stderr, flush=True)
    _print_table(rows)
    for line in failed:
        print("FAILED", line)
    print(json.dumps({"networks": rows, "failed": failed}))  # the figures, on the last line
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

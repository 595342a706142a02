"""GPU check: what one lent GPU measures for brats_seg at the gpu profile, in one short run.

For the ``unet`` and ``dynunet`` networks of ``bundles/brats_seg`` (built from the bundle's own
configs with :func:`mrivol.training.workflow.build_network`, seeded random weights; dynunet from
the plan ``mrivol plan`` makes for BraTS-sized crops: 128^3 patch, six stages, filters 32..320):

- training steps per second (forward, the bundle's loss, backward, AdamW step) on random data
  of the gpu profile's patch and batch size (``roi_size``; ``batch_size`` x ``num_samples``
  patches per step), with float16 autocast + ``GradScaler`` and with bfloat16 autocast;
- GPU utilisation during those steps, sampled through NVML (``pynvml`` from nvidia-ml-py) every
  ``--util-interval`` seconds: mean / min / max of the samples;
- peak memory of each measurement (``torch.cuda.max_memory_allocated``);
- the step rate of a one-GPU ``DistributedDataParallel`` model (a one-process NCCL group set up
  from ``MASTER_ADDR`` / ``MASTER_PORT`` / ``RANK=0`` / ``WORLD_SIZE=1``; the wrapper is
  :func:`mrivol.training.wrap_ddp`, as training uses) at the profile's ``amp_dtype``, and its
  ratio to the plain model's rate (the cost of DDP's gradient hooks and all-reduce);
- seconds to segment one 240x240x155 four-channel case with the bundle's sliding window
  (``roi_size``, the profile's ``sw_batch_size``, ``sw_overlap``, Gaussian blending) under the
  profile's autocast dtype.

Timed steps come after ``--warmup`` steps (cuDNN's autotuner is on, as on the gpu profile) and
are bracketed by ``torch.cuda.synchronize``. The data never leave the GPU: the numbers are the
GPU's ceiling, not a training run's rate with its data loading.

Usage (a CUDA build of torch: ``make venv TORCH_INDEX=...``, or the trainer image with the
checkout mounted, since the image holds no ``benchmarks/``)::

    python benchmarks/gpu_check.py                       # unet and dynunet, 20 timed steps
    python benchmarks/gpu_check.py --nets unet --steps 50
    python benchmarks/gpu_check.py --cpu-smoke           # tiny version of every step on the CPU
    docker run --rm --gpus 1 --shm-size=2g -v "$PWD:/src:ro" -w /src --entrypoint python \
        mrivol:0.1.0 benchmarks/gpu_check.py

Not yet timed on a GPU. It runs, per network, three training measurements of ``--warmup`` +
``--steps`` steps and ``--sw-repeats`` + 1 sliding-window cases; give it a timeout of minutes.

Without CUDA (and without ``--cpu-smoke``) it exits with status 2 and says so. A measurement
that fails (out of memory, bfloat16 unsupported, ...) is reported in the JSON under ``errors``
and the others still run; the exit status is then 1. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUNDLE = "brats_seg"
CASE = (240, 240, 155)  # a BraTS case at 1 mm
NO_CUDA = (
    "gpu_check.py needs a CUDA GPU: torch.cuda.is_available() is False "
    "(torch {version}, built for CUDA {cuda}). Run it on a GPU machine with a CUDA build of "
    "torch, or pass --cpu-smoke for a tiny CPU run of every step."
)
# --cpu-smoke: every step, tiny (a few seconds on 2 CPU cores)
SMOKE = {"patch": [16, 16, 16], "batch": 1, "case": [24, 16, 16], "steps": 1, "warmup": 1}
SMOKE_UNET = {"network_def#channels": [4, 8, 16, 32]}  # the bundle's unet, narrower
SMOKE_DYNUNET_PLANS = {
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
    "kernel_sizes": [[3, 3, 3]] * 4,
    "filters": [4, 8, 16, 32],
    "patch_size": SMOKE["patch"],
    "target_spacing": [1.0, 1.0, 1.0],
}


def dynunet_plans() -> dict:
    """The plan for BraTS-like cropped brains (as benchmarks/networks.py): 128^3, 6 stages."""
    from mrivol.planning import plan_from_fingerprint

    fingerprint = {"spacings": [[1.0, 1.0, 1.0]] * 8, "shapes_after_crop": [[140, 170, 140]] * 8}
    return plan_from_fingerprint(fingerprint)


def bundle_settings(net: str, overrides: dict) -> dict[str, Any]:
    """The gpu profile's values the check uses, and the bundle's training loss."""
    from monai.bundle import ConfigParser

    from mrivol.paths import bundle_dir
    from mrivol.training.workflow import config_files

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files(BUNDLE, "train", profile="gpu", net=net)])
    parser.read_meta(str(bundle_dir(BUNDLE) / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle_dir(BUNDLE)), **overrides})
    keys = [
        "roi_size",
        "batch_size",
        "num_samples",
        "in_channels",
        "out_channels",
        "sw_batch_size",
        "sw_overlap",
        "amp_dtype",
        "learning_rate",
        "weight_decay",
    ]
    settings = {key: parser.get_parsed_content(key) for key in keys}
    settings["loss"] = parser.get_parsed_content("loss")
    return settings


class UtilisationSampler:
    """GPU utilisation (NVML, percent of time a kernel ran) sampled in a background thread."""

    def __init__(self, device: torch.device, interval: float) -> None:
        self.interval, self.samples, self.error = interval, [], None
        self._stop = threading.Event()
        self._handle = None
        if device.type != "cuda":
            self.error = "no CUDA device"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = _nvml_handle(pynvml, device)
        except Exception as exc:  # no driver library, no permission: say so in the JSON
            self.error = f"NVML unavailable: {exc!r}"

    def __enter__(self) -> UtilisationSampler:
        if self._handle is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            except self._nvml.NVMLError as exc:  # reported with the (missing) samples
                self.error = f"NVML query failed: {exc!r}"
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._handle is not None:
            self._thread.join()

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"mean": None, "min": None, "max": None, "samples": 0, "note": self.error}
        return {
            "mean": round(statistics.fmean(self.samples), 1),
            "min": min(self.samples),
            "max": max(self.samples),
            "samples": len(self.samples),
            "note": self.error,
        }


def _nvml_handle(pynvml: Any, device: torch.device) -> Any:
    """The NVML handle of the torch device (by UUID or PCI bus id: CUDA_VISIBLE_DEVICES
    renumbers torch's devices, not NVML's)."""
    props = torch.cuda.get_device_properties(device)
    uuid = str(getattr(props, "uuid", "") or "")
    names = [uuid] if uuid.startswith("GPU-") else [f"GPU-{uuid}", uuid] if uuid else []
    for name in names:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(name)
        except pynvml.NVMLError:
            continue
    if hasattr(props, "pci_bus_id"):
        bus = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        return pynvml.nvmlDeviceGetHandleByPciBusId(bus)
    return pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)


def _peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def train_rate(
    model: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batch: tuple[torch.Tensor, torch.Tensor],
    *,
    dtype: torch.dtype,
    settings: dict[str, Any],
    steps: int,
    warmup: int,
    util_interval: float,
) -> dict[str, Any]:
    """Training steps per second under autocast ``dtype`` (float16: with a GradScaler)."""
    device = batch[0].device
    model.train()
    model.zero_grad(set_to_none=True)  # no gradients of an earlier measurement in its peak
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings["learning_rate"], weight_decay=settings["weight_decay"]
    )
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None
    image, label = batch

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype):
            loss = loss_fn(model(image), label)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    _reset_peak(device)
    for _ in range(warmup):
        step()
    _sync(device)
    with UtilisationSampler(device, util_interval) as sampler:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        seconds = time.perf_counter() - start
    return {
        "steps_per_s": round(steps / seconds, 3),
        "samples_per_s": round(steps * image.shape[0] / seconds, 3),
        "gpu_util_pct": sampler.summary(),
        "peak_mem_gib": _peak_gib(device),
    }


def sliding_window_seconds(
    model: torch.nn.Module, *, case: torch.Tensor, settings: dict[str, Any], dtype, repeats: int
) -> dict[str, Any]:
    """Median seconds of one case through the bundle's sliding window (eval, no_grad)."""
    from monai.inferers import SlidingWindowInferer

    device = case.device
    inferer = SlidingWindowInferer(
        roi_size=settings["roi_size"],
        sw_batch_size=settings["sw_batch_size"],
        overlap=settings["sw_overlap"],
        mode="gaussian",
    )
    model.eval()
    times = []
    _reset_peak(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for i in range(repeats + 1):  # the first is a warm-up
            _sync(device)
            start = time.perf_counter()
            out = inferer(case, model)
            _sync(device)
            if i:
                times.append(time.perf_counter() - start)
    return {
        "seconds": round(statistics.median(times), 3),
        "case": list(case.shape[2:]),
        "out_shape": list(out.shape),
        "amp_dtype": str(dtype).removeprefix("torch.") if dtype else None,
        "peak_mem_gib": _peak_gib(device),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_one_process_group(device: torch.device) -> str:
    """A one-process group from the environment torchrun would give rank 0 of 1."""
    import torch.distributed as dist

    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(_free_port()),
            "RANK": "0",
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "1",
            "LOCAL_WORLD_SIZE": "1",
        }
    )
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    return backend


def _dtype(name: str | None) -> torch.dtype | None:
    return {None: None, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def check_network(
    name: str, args: argparse.Namespace, device: torch.device, errors: dict[str, str]
) -> dict[str, Any]:
    """Every measurement of one network; a failing one goes to ``errors`` and the rest run."""
    from mrivol.training import wrap_ddp
    from mrivol.training.workflow import build_network

    if name == "dynunet":
        overrides = {"plans": SMOKE_DYNUNET_PLANS if args.cpu_smoke else dynunet_plans()}
    else:
        overrides = SMOKE_UNET if args.cpu_smoke and name == "unet" else {}
    settings = bundle_settings(name, overrides)
    if args.cpu_smoke:
        settings |= {"roi_size": SMOKE["patch"], "batch_size": SMOKE["batch"], "num_samples": 1}
    torch.manual_seed(0)
    model = build_network(BUNDLE, name, profile="gpu", overrides=overrides).to(device)
    patches = settings["batch_size"] * settings["num_samples"]
    shape = (patches, settings["in_channels"], *settings["roi_size"])
    generator = torch.Generator(device=device).manual_seed(1)
    image = torch.randn(shape, device=device, generator=generator)
    label = (
        torch.rand(
            (patches, settings["out_channels"], *settings["roi_size"]),
            device=device,
            generator=generator,
        )
        > 0.7
    ).float()
    steps, warmup = args.steps, args.warmup
    result: dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "patch": list(settings["roi_size"]),
        "batch": patches,
        "train": {},
    }

    def attempt(key: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # reported in the JSON and the exit status, never dropped
            traceback.print_exc()
            errors[f"{name}/{key}"] = repr(exc)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            return {"error": repr(exc)}

    common = dict(settings=settings, steps=steps, warmup=warmup, util_interval=args.util_interval)
    for dtype_name in ("float16", "bfloat16"):
        result["train"][dtype_name] = attempt(
            f"train/{dtype_name}",
            lambda d=dtype_name: train_rate(
                model, settings["loss"], (image, label), dtype=_dtype(d), **common
            ),
        )
    amp = settings["amp_dtype"] or "bfloat16"

    def ddp() -> dict[str, Any]:
        wrapped = wrap_ddp(model, device)
        rate = train_rate(wrapped, settings["loss"], (image, label), dtype=_dtype(amp), **common)
        single = result["train"].get(amp, {}).get("steps_per_s")
        rate["vs_single"] = round(rate["steps_per_s"] / single, 3) if single else None
        return {"world_size": 1, "amp_dtype": amp, **rate}

    result["ddp"] = attempt("ddp", ddp)
    case_shape = SMOKE["case"] if args.cpu_smoke else list(CASE)
    case = torch.randn(
        (1, settings["in_channels"], *case_shape), device=device, generator=generator
    )
    result["sliding_window"] = attempt(
        "sliding_window",
        lambda: sliding_window_seconds(
            model, case=case, settings=settings, dtype=_dtype(amp), repeats=args.sw_repeats
        ),
    )
    result["sliding_window"]["sw_batch_size"] = settings["sw_batch_size"]
    result["sliding_window"]["overlap"] = settings["sw_overlap"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="+", default=["unet", "dynunet"])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--sw-repeats", type=int, default=3, help="timed sliding-window cases")
    parser.add_argument("--util-interval", type=float, default=0.05, help="NVML sample period")
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="tiny version of every step on the CPU (tests)"
    )
    args = parser.parse_args(argv)

    if args.cpu_smoke:
        device = torch.device("cpu")
        args.steps, args.warmup, args.sw_repeats = SMOKE["steps"], SMOKE["warmup"], 1
        torch.set_num_threads(min(2, torch.get_num_threads()))
    elif not torch.cuda.is_available():
        print(NO_CUDA.format(version=torch.__version__, cuda=torch.version.cuda), file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda", 0)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # as the gpu profile (deterministic: false)

    import torch.distributed as dist

    report: dict[str, Any] = {
        "benchmark": "gpu_check",
        "cpu_smoke": args.cpu_smoke,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "bundle": BUNDLE,
        "profile": "gpu",
        "steps": args.steps,
        "warmup": args.warmup,
        "nets": {},
        "errors": {},
    }
    report["ddp_backend"] = init_one_process_group(device)
    try:
        for name in args.nets:
            t0 = time.perf_counter()
            report["nets"][name] = check_network(name, args, device, report["errors"])
            print(f"{name}: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        dist.destroy_process_group()
    print(json.dumps(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

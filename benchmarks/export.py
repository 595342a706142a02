"""Benchmark exported networks: PyTorch vs ONNX Runtime (CPU), seconds per sliding-window case.

For each network (the bundle's own ``network_def``, seeded random weights: the timing does not
depend on them), the network is exported with :func:`mrivol.tracking.export.export_network`
(parity-checked) and one case is segmented with MONAI's
:class:`~monai.inferers.SlidingWindowInferer` exactly as brats_seg validates and infers
(``roi_size``, ``sw_batch_size``, overlap and Gaussian blending of the cpu profile), once with
the PyTorch module and once with an ONNX Runtime session wrapped as the inferer's predictor.
The case is a random 4-channel volume of ``--case`` voxels (BraTS' 240x240x155 at 2 mm is
120x120x78, the default). Median of ``--repeats`` runs after a warm-up; wall time, so run it on
an otherwise idle machine. ``OMP_NUM_THREADS`` / ``--threads`` set both runtimes' threads.

Usage::

    python benchmarks/export.py                          # unet and dynunet, 120x120x78, 3 repeats
    python benchmarks/export.py --nets unet --case 160 160 96 --threads 2

The last line is a JSON object: seconds per case for each runtime and the ratio
``torch_s / onnxruntime_s`` (> 1: ONNX Runtime is faster), with the parity difference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import median_seconds  # noqa: E402
from mrivol.tracking.export import export_network  # noqa: E402
from mrivol.training.workflow import build_network  # noqa: E402

# the plan `mrivol plan` makes for the cpu profile's phantoms (2 mm, 64^3 patch)
DYNUNET_PLANS = {
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
    "kernel_sizes": [[3, 3, 3]] * 5,
    "filters": [32, 64, 128, 256, 320],
    "patch_size": [64, 64, 64],
    "target_spacing": [2.0, 2.0, 2.0],
}


def _network(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    overrides = {"plans": DYNUNET_PLANS} if name == "dynunet" else {}
    return build_network("brats_seg", name, overrides=overrides).eval()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="+", default=["unet", "dynunet"])
    parser.add_argument("--case", type=int, nargs=3, default=[120, 120, 78])
    parser.add_argument("--roi", type=int, nargs=3, default=[64, 64, 64])
    parser.add_argument("--sw-batch-size", type=int, default=4)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    import onnxruntime
    from monai.inferers import SlidingWindowInferer

    if args.threads:
        torch.set_num_threads(args.threads)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads or torch.get_num_threads()
    inferer = SlidingWindowInferer(
        roi_size=args.roi, sw_batch_size=args.sw_batch_size, overlap=args.overlap, mode="gaussian"
    )
    case = torch.randn(1, 4, *args.case, generator=torch.Generator().manual_seed(1))
    results: dict = {"case": args.case, "roi": args.roi, "threads": options.intra_op_num_threads}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.nets:
            net = _network(name)
            exported = export_network(net, "onnx", Path(tmp) / f"{name}.onnx", in_channels=4)
            session = onnxruntime.InferenceSession(
                str(exported.path), options, providers=["CPUExecutionProvider"]
            )

            def ort(x: torch.Tensor, session=session) -> torch.Tensor:
                return torch.from_numpy(session.run(None, {"image": x.numpy()})[0])

            with torch.no_grad():
                torch_s = median_seconds(lambda net=net: inferer(case, net), args.repeats)
                ort_s = median_seconds(lambda ort=ort: inferer(case, ort), args.repeats)
                diff = float((inferer(case, net) - inferer(case, ort)).abs().max())
            results[name] = {
                "torch_s": round(torch_s, 3),
                "onnxruntime_s": round(ort_s, 3),
                "ratio_torch_over_ort": round(torch_s / ort_s, 3),
                "window_parity_max_abs_diff": exported.max_abs_diff,
                "case_max_abs_diff": diff,
            }
            print(
                f"{name}: PyTorch {torch_s:.2f} s, ONNX Runtime {ort_s:.2f} s per case "
                f"({torch_s / ort_s:.2f}x); max abs diff {diff:.2g}",
                flush=True,
            )
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()

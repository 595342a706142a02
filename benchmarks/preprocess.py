"""Benchmark the preprocessing chain: per-step seconds, ANTs N4 comparison, worker throughput.

Usage::

    python benchmarks/preprocess.py [--out DIR] [--cases 4] [--skip-workers]

1. One 240x240x155 1 mm four-modality phantom: seconds of every step of the default chain
   (coregister, skullstrip, n4, resample) and their scores.
2. N4 on its T1 (inside the true brain mask): mrivol (SimpleITK, shrink 4) and, when
   ``antspyx`` is installed, ANTs N4 with its defaults and shrink factor 4, in the same run:
   seconds, their ratio, and white-matter CoV of both against the bias-free image.
3. Throughput on ``--cases`` 2 mm phantoms: 1 worker x 1 thread, 1 worker x all cores and
   ``cores`` workers x 1 thread (cases per minute).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def _phantoms(root: Path, n: int, shape, spacing) -> Path:
    from mrivol.data.manifest import build_manifest
    from mrivol.synth.phantoms import generate_brats_phantoms

    generate_brats_phantoms(root, n_cases=n, shape=shape, spacing=spacing, progress=False)
    build_manifest(layout="brats2021", root=root, out=root.parent / f"{root.name}.csv", folds=1)
    return root.parent / f"{root.name}.csv"


def chain(manifest: Path, config: dict) -> None:
    from mrivol.data.manifest import LAYOUTS, read_manifest
    from mrivol.preprocessing.case import run_case
    from mrivol.preprocessing.runner import set_threads

    set_threads(len(os.sched_getaffinity(0)))
    row = read_manifest(manifest).to_dict("records")[0]
    lay = LAYOUTS["brats2021"]
    t0 = time.perf_counter()
    res = run_case(row, images=lay.images, label=lay.label, steps=tuple(config["steps"]),
                   config=config)  # fmt: skip
    total = time.perf_counter() - t0
    print("\n== chain on one 240x240x155 four-modality case ==")
    for r in res.rows:
        scores = {k: v for k, v in r.items() if k not in ("case_id", "step", "seconds")}
        print(f"{r['step']:<11} {r['seconds']:7.2f} s  {scores}")
    print(f"{'total':<11} {total:7.2f} s  (acceptance: <= 60 s)")


def n4_versus_ants(manifest: Path, config: dict) -> None:
    import torch
    from monai.data import MetaTensor

    from mrivol.data.manifest import read_manifest
    from mrivol.preprocessing.qc import cov, load_truth
    from mrivol.transforms.n4_bias_field import N4BiasFieldCorrection

    row = read_manifest(manifest).to_dict("records")[0]
    img = nib.load(row["t1"])
    t1 = img.get_fdata(dtype=np.float32)
    truth = load_truth(row["t1"], row["case_id"])
    bias = nib.load(truth["dir"] / f"{row['case_id']}_bias_t1.nii.gz").get_fdata(dtype=np.float32)
    wm, brain = truth["tissue"] == 3, truth["brainmask"]
    free = cov((t1 / bias)[wm])
    print("\n== N4 on the 1 mm T1 (fit inside the true brain mask) ==")
    print(f"WM CoV: raw {cov(t1[wm]):.5f}, bias-free {free:.5f}")
    x = MetaTensor(torch.from_numpy(t1)[None], affine=torch.as_tensor(img.affine))
    m = torch.from_numpy(brain.astype(np.uint8))[None]
    t0 = time.perf_counter()
    ours = N4BiasFieldCorrection(**config["n4"])(x, mask=m)[0].numpy()
    t_ours = time.perf_counter() - t0
    print(f"mrivol N4 (SimpleITK, shrink 4): {t_ours:6.2f} s, WM CoV {cov(ours[wm]):.5f} "
          f"(ratio to bias-free {cov(ours[wm]) / free:.3f})")  # fmt: skip
    try:
        import ants
    except ImportError:
        print("antspyx not installed: pip install 'torch==2.13.0' antspyx==0.6.3 to compare")
        return
    a_img = ants.from_nibabel(img) if hasattr(ants, "from_nibabel") else ants.from_numpy(t1)
    a_mask = ants.from_numpy(brain.astype(np.float32), origin=a_img.origin,
                             spacing=a_img.spacing, direction=a_img.direction)  # fmt: skip
    t0 = time.perf_counter()
    theirs = ants.n4_bias_field_correction(a_img, mask=a_mask, shrink_factor=4).numpy()
    t_ants = time.perf_counter() - t0
    print(f"ANTs N4 (antspyx defaults, shrink 4): {t_ants:6.2f} s, WM CoV {cov(theirs[wm]):.5f}")
    print(f"time ratio mrivol / ANTs: {t_ours / t_ants:.2f} (acceptance <= 0.5); CoV mrivol - "
          f"ANTs: {cov(ours[wm]) - cov(theirs[wm]):+.5f} (acceptance <= +0.005)")  # fmt: skip


def throughput(manifest: Path, out: Path, config: dict) -> None:
    from mrivol.preprocessing.runner import preprocess_manifest

    cores = len(os.sched_getaffinity(0))
    print(f"\n== throughput, {cores} cores ==")
    results = {}
    for name, workers, threads in [("1 worker x 1 thread", 1, 1),
                                   (f"1 worker x {cores} threads", 1, cores),
                                   (f"{cores} workers x 1 thread", cores, 1)]:  # fmt: skip
        shutil.rmtree(out / "tp", ignore_errors=True)
        t0 = time.perf_counter()
        res = preprocess_manifest(manifest, out / "tp", workers=workers, config=config,
                                  threads_per_worker=threads, progress=False)  # fmt: skip
        dt = time.perf_counter() - t0
        n = len(res.done)
        results[name] = n / dt * 60
        print(f"{name:<22} {dt:7.1f} s for {n} cases: {results[name]:.2f} cases/min")
    base, both, par = results.values()
    print(
        f"speed-up {cores} workers vs 1 worker x 1 thread: {par / base:.2f}x (acceptance >= 1.6);"
        f" vs 1 worker x {cores} threads: {par / both:.2f}x (acceptance >= 1)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/mrivol-bench-preprocess", help="work folder")
    parser.add_argument("--cases", type=int, default=4, help="2 mm cases for the throughput")
    parser.add_argument("--skip-workers", action="store_true", help="no throughput runs")
    args = parser.parse_args()
    from mrivol.preprocessing.runner import load_preprocess_config

    out = Path(args.out)
    config = load_preprocess_config()
    big = _phantoms(out / "ph1mm", 1, (240, 240, 155), (1.0, 1.0, 1.0))
    chain(big, config)
    n4_versus_ants(big, config)
    if not args.skip_workers:
        small = _phantoms(out / "ph2mm", args.cases, (96, 96, 80), (2.0, 2.0, 2.0))
        cfg = config | {"resample": {"axcodes": "RAS", "pixdim": [2.0, 2.0, 2.0]}}
        throughput(small, out, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark BraTS lesion-wise Dice / HD95 against the legacy (whole-region) Dice + HD95.

Synthetic 240 x 240 x 155 BraTS 2023 cases at 1 mm: a truth with several tumours of different
sizes (oedema 2 around a core: necrosis 1 and enhancing rim 3) and a prediction made from it
by shifting and eroding / dilating each tumour, missing one, and adding a few stray
components. Per case, side by side in one run, the median of ``--repeats`` timings of

* ``lesion-wise``: :func:`mrivol.metrics.lesionwise.lesionwise_report` with the rules of
  ``--rules`` (default BraTS 2023 GLI: dilation 3, 50 mm^3);
* ``legacy``: :func:`mrivol.metrics.segmentation.segmentation_report` (Dice, HD95,
  sensitivity, specificity, volumes of ET / TC / WT) of the same case;
* ``2025``: the official BraTS 2025 evaluator (``brats-evaluation``, ``--config-2025``, default
  GLI) on the same case written as NIfTI, through
  :func:`mrivol.metrics.brats2025.evaluate_2025_case` (its file reading included: that is its
  interface).

The last line printed is one JSON object (seconds per case, their ratios, the case count).

Usage::

    python benchmarks/lesionwise.py
    python benchmarks/lesionwise.py --cases 4 --repeats 5 --rules BraTS-GLI-2024
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tempfile  # noqa: E402

import nibabel as nib  # noqa: E402

from benchmarks.timing import median_seconds  # noqa: E402
from mrivol.metrics.brats2025 import evaluate_2025_case  # noqa: E402
from mrivol.metrics.lesionwise import lesionwise_report  # noqa: E402
from mrivol.metrics.segmentation import segmentation_report  # noqa: E402

SHAPE = (240, 240, 155)


def _ellipsoid(center: np.ndarray, radii: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray]:
    """Box and mask of an ellipsoid (voxels), clipped to the image."""
    lo = np.maximum(np.floor(center - radii).astype(int), 0)
    hi = np.minimum(np.ceil(center + radii).astype(int) + 1, SHAPE)
    grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    d = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii, strict=True))
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True)), d <= 1.0


def make_case(seed: int, n_tumours: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (truth, prediction) uint8 label maps of one synthetic case."""
    rng = np.random.default_rng(seed)
    true = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    missed = int(rng.integers(n_tumours))
    for k in range(n_tumours):
        radius = rng.uniform(3.0, 22.0)  # 113 mm^3 ... 45 ml
        center = rng.uniform(radius + 10, np.array(SHAPE) - radius - 10)
        radii = radius * rng.uniform(0.7, 1.3, 3)
        for target, shift, scale in ((true, 0.0, 1.0), (pred, 2.0, rng.uniform(0.8, 1.15))):
            if target is pred and k == missed:
                continue
            c = center + rng.normal(0.0, shift, 3)
            for label, fraction in ((2, 1.0), (3, 0.6), (1, 0.35)):
                box, mask = _ellipsoid(c, radii * scale * fraction)
                target[box][mask] = label
    for _ in range(int(rng.integers(2, 6))):  # stray false-positive components
        box, mask = _ellipsoid(rng.uniform(20, np.array(SHAPE) - 20), rng.uniform(1.0, 4.0, 3))
        pred[box][mask & (pred[box] == 0)] = int(rng.choice([1, 2, 3]))
    # ragged boundary, as a network's output: flip labels on a thin random shell
    shell = ndimage.binary_dilation(pred > 0, iterations=1) & ~ndimage.binary_erosion(pred > 0)
    flip = shell & (rng.random(SHAPE) < 0.3)
    pred[flip] = np.where(pred[flip] > 0, 0, 2)
    return true, pred


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3, help="number of synthetic cases")
    parser.add_argument("--repeats", type=int, default=3, help="timings per case (median)")
    parser.add_argument("--rules", default="BraTS-GLI", help="lesion-wise preset name")
    parser.add_argument("--config-2025", default="BraTS2025-GLI", help="2025 evaluator challenge")
    args = parser.parse_args(argv)

    rows, lw_times, legacy_times, times_2025 = [], [], [], []
    tmp = Path(tempfile.mkdtemp())
    spacing = (1.0, 1.0, 1.0)
    for case in range(args.cases):
        true, pred = make_case(seed=case, n_tumours=5 + case % 4)
        lesionwise_report(pred, true, spacing=spacing, rules=args.rules)  # warm-up
        t_lw = median_seconds(
            lambda t=true, p=pred: lesionwise_report(p, t, spacing=spacing, rules=args.rules),
            args.repeats,
            warmup=False,
        )
        t_legacy = median_seconds(
            lambda t=true, p=pred: segmentation_report(p, t, spacing=spacing, labels="brats2023"),
            args.repeats,
            warmup=False,
        )
        paths = [tmp / f"{name}_{case}.nii.gz" for name in ("pred", "true")]
        for path, data in zip(paths, (pred, true), strict=True):
            nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        evaluate_2025_case(str(case), *paths, args.config_2025)  # warm-up (loads the config)
        t_2025 = median_seconds(
            lambda c=case, p=paths: evaluate_2025_case(str(c), *p, args.config_2025),
            args.repeats,
            warmup=False,
        )
        times_2025.append(t_2025)
        report = lesionwise_report(pred, true, spacing=spacing, rules=args.rules)
        counts = " ".join(
            f"{r['region']}:{r['num_tp']}/{r['num_fp']}/{r['num_fn']}" for r in report
        )
        rows.append((case, 5 + case % 4, t_lw, t_legacy, t_2025, counts))
        lw_times.append(t_lw)
        legacy_times.append(t_legacy)

    print(f"lesion-wise ({args.rules}) vs legacy Dice + HD95, {SHAPE}, median of {args.repeats}")
    print(
        f"{'case':>4} {'tumours':>7} {'lesion-wise s':>13} {'legacy s':>9} {'ratio':>6} "
        f"{'2025 s':>7}  TP/FP/FN"
    )
    for case, n, t_lw, t_legacy, t_25, counts in rows:
        print(
            f"{case:>4} {n:>7} {t_lw:>13.3f} {t_legacy:>9.3f} {t_lw / t_legacy:>6.2f} "
            f"{t_25:>7.3f}  {counts}"
        )
    result = {
        "rules": args.rules,
        "cases": args.cases,
        "repeats": args.repeats,
        "seconds_lesionwise": round(statistics.mean(lw_times), 4),
        "seconds_legacy": round(statistics.mean(legacy_times), 4),
        "ratio_lesionwise_to_legacy": round(sum(lw_times) / sum(legacy_times), 3),
        "config_2025": args.config_2025,
        "seconds_brats2025": round(statistics.mean(times_2025), 4),
        "ratio_brats2025_to_legacy": round(sum(times_2025) / sum(legacy_times), 3),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

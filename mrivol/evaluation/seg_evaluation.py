"""Evaluate predicted BraTS label maps against ground truth: per-case CSV, summary, box plot.

``mrivol evaluate-seg --pred DIR --gt DIR --out FILE.csv``. Cases are matched by id:
predictions are ``<pred>/<case>_seg.nii.gz``; ground truth is ``<gt>/<case>_seg.nii.gz`` or the
BraTS layout ``<gt>/<case>/<case>_seg.nii.gz``. Metrics come from
:func:`mrivol.metrics.segmentation_report` (Dice; HD95 in mm with DeepMind's area-weighted
surface distances and the BraTS empty-mask rules; sensitivity, specificity, volumes) and, when
uncertainty maps are present, :func:`mrivol.metrics.qu_brats_report` (QU-BraTS, Mehta et al.,
MELBA 2022). Uncertainty maps, first match wins:

* ``<case>_unc_<region>.nii.gz`` with region ``et|tc|wt`` or the QU-BraTS submission names
  ``enhance|core|whole``: taken as already on the 0-100 scale (the challenge format);
* ``<case>_entropy_<region>.nii.gz`` (what ``mrivol infer --mc-samples T`` writes, nats):
  rescaled with 0 -> 0 and ln 2 (the maximum binary entropy) -> 100, one scale for all cases.

FTP / FTN are counted inside the brain mask ``T1 > 0`` when ``<case>_t1.nii.gz`` lies next to
the ground truth (as the reference code does), otherwise over the whole image.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from mrivol.io import write_csv_atomic
from mrivol.metrics import qu_brats_report, rescale_uncertainty, segmentation_report
from mrivol.metrics.uncertainty import LN2

__all__ = [
    "GridMismatchError",
    "SegEvaluation",
    "add_evaluate_seg_arguments",
    "check_same_grid",
    "evaluate_segmentations",
    "find_ground_truth",
    "main_evaluate_seg",
    "summarise",
]

_SEG = "_seg.nii.gz"
#: QU-BraTS map names per region, in the order they are looked for.
_UNC_NAMES = {"ET": ("et", "enhance"), "TC": ("tc", "core"), "WT": ("wt", "whole")}


class GridMismatchError(ValueError):
    """A prediction does not lie on its ground truth's voxel grid."""


@dataclass
class SegEvaluation:
    """What :func:`evaluate_segmentations` produced.

    Attributes:
        rows: one dict per case and region (segmentation metrics, QU-BraTS when available).
        summary: mean / std / median of every metric per region.
        failed: ``{case: message}`` for cases that could not be evaluated (missing, grid, I/O).
        outputs: paths written (per-case CSV, summary CSV, box-plot PNG).
    """

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    failed: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)


def find_ground_truth(gt_dir: str | Path) -> dict[str, Path]:
    """Ground-truth label maps under ``gt_dir`` by case id (flat or BraTS layout).

    Raises:
        FileNotFoundError: if ``gt_dir`` is missing or holds no ``*_seg.nii.gz``.
    """
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"ground-truth folder {gt_dir} does not exist")
    found = {p.name[: -len(_SEG)]: p for p in sorted(gt_dir.glob(f"*{_SEG}"))}
    for p in sorted(gt_dir.glob(f"*/*{_SEG}")):
        if p.name == f"{p.parent.name}{_SEG}":
            found.setdefault(p.parent.name, p)
    if not found:
        raise FileNotFoundError(
            f"no ground truth in {gt_dir}: expected <case>{_SEG} or <case>/<case>{_SEG}"
        )
    return found


def check_same_grid(
    pred: nib.spatialimages.SpatialImage,
    truth: nib.spatialimages.SpatialImage,
    *,
    case: str,
    pred_path: Path,
    gt_path: Path,
    atol: float = 1e-3,
) -> None:
    """Raise :class:`GridMismatchError` unless shapes are equal and affines agree within ``atol``.

    Raises:
        GridMismatchError: naming the case, both files and the difference.
    """
    where = f"case {case!r}: prediction {pred_path} and ground truth {gt_path}"
    if pred.shape[:3] != truth.shape[:3]:
        raise GridMismatchError(
            f"{where} have different shapes {pred.shape[:3]} vs {truth.shape[:3]}; write the "
            "prediction on the ground truth's grid (mrivol infer does, via Invertd)."
        )
    diff = np.abs(pred.affine - truth.affine).max()
    if diff > atol:
        raise GridMismatchError(
            f"{where} have different affines (max difference {diff:.4g} > {atol}):\n"
            f"{np.round(pred.affine, 4)}\nvs\n{np.round(truth.affine, 4)}\n"
            "Resample the prediction onto the ground-truth grid first."
        )


def _uncertainty_maps(pred_dir: Path, case: str) -> tuple[dict[str, np.ndarray], str] | None:
    """QU-BraTS maps (0-100) of ``case`` and their kind, or ``None`` when none are complete."""
    for kind in ("unc", "entropy"):
        paths = {}
        for region, names in _UNC_NAMES.items():
            hits = [pred_dir / f"{case}_{kind}_{n}.nii.gz" for n in names]
            hits = [p for p in hits if p.is_file()]
            if hits:
                paths[region] = hits[0]
        if len(paths) == len(_UNC_NAMES):
            maps = {
                r: np.asanyarray(nib.load(p).dataobj, dtype=np.float64) for r, p in paths.items()
            }
            if kind == "entropy":
                maps = {
                    r: rescale_uncertainty(m, min_value=0.0, max_value=LN2) for r, m in maps.items()
                }
            return maps, kind
    return None


def _evaluate_case(
    case: str, pred_path: Path, gt_path: Path, *, labels: str, atol: float, max_hd95: float | None
) -> list[dict[str, Any]]:
    pred_img, gt_img = nib.load(pred_path), nib.load(gt_path)
    check_same_grid(pred_img, gt_img, case=case, pred_path=pred_path, gt_path=gt_path, atol=atol)
    pred = np.asanyarray(pred_img.dataobj)
    truth = np.asanyarray(gt_img.dataobj)
    spacing = tuple(float(z) for z in gt_img.header.get_zooms()[:3])
    rows = segmentation_report(
        pred, truth, spacing=spacing, labels=labels, max_hd95=max_hd95, case_id=case
    )
    unc = _uncertainty_maps(pred_path.parent, case)
    if unc is not None:
        maps, kind = unc
        t1 = gt_path.parent / f"{case}_t1.nii.gz"
        brain = np.asanyarray(nib.load(t1).dataobj) > 0 if t1.is_file() else None
        qu = qu_brats_report(pred, truth, maps, brain_mask=brain, labels=labels, case_id=case)
        by_region = {r["region"]: r for r in qu}
        for row in rows:
            q = by_region[row["region"]]
            row.update(
                qu_source=kind,
                qu_auc_dice=q["auc_dice"],
                qu_auc_ftp=q["auc_ftp"],
                qu_auc_ftn=q["auc_ftn"],
                qu_score=q["score"],
            )
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, std (ddof 1) and median of every numeric metric per region."""
    if not rows:
        return []
    df = pd.DataFrame(rows)
    numeric = [c for c in df.columns if c not in ("case", "region", "qu_source")]
    df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce")
    out = []
    for region, group in df.groupby("region", sort=False):
        row: dict[str, Any] = {"region": region, "n_cases": int(group["case"].nunique())}
        for col in numeric:
            values = group[col].dropna()
            row[f"{col}_mean"] = float(values.mean()) if len(values) else float("nan")
            row[f"{col}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            row[f"{col}_median"] = float(values.median()) if len(values) else float("nan")
        out.append(row)
    return out


def evaluate_segmentations(
    pred_dir: str | Path,
    ground_truth: str | Path | Mapping[str, str | Path],
    *,
    out: str | Path,
    labels: str = "brats2021",
    atol: float = 1e-3,
    max_hd95: float | None = None,
    boxplot: bool = True,
) -> SegEvaluation:
    """Evaluate every ground-truth case; write the per-case CSV, summary CSV and box plot.

    Failures (missing prediction, grid mismatch, unreadable file, invalid labels) are collected
    per case and the other cases still evaluated.

    Args:
        pred_dir: folder with ``<case>_seg.nii.gz`` (and optional uncertainty maps).
        ground_truth: a folder (see :func:`find_ground_truth`) or ``{case: label path}``.
        out: the per-case CSV; the summary goes to ``<stem>_summary.csv`` and the box plot to
            ``<stem>_boxplot.png`` next to it.
        labels: ``"brats2021"`` (ET = 4) or ``"brats2023"`` (ET = 3).
        atol: affine tolerance (mm) of the grid check.
        max_hd95: HD95 when one mask is empty (``None``: the convention's value).
        boxplot: write the box-plot PNG.

    Returns:
        A :class:`SegEvaluation`.

    Raises:
        FileNotFoundError: if ``pred_dir`` or the ground truth folder does not exist.
    """
    pred_dir, out = Path(pred_dir), Path(out)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction folder {pred_dir} does not exist")
    truth = (
        {str(k): Path(v) for k, v in ground_truth.items()}
        if isinstance(ground_truth, Mapping)
        else find_ground_truth(ground_truth)
    )
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for case, gt_path in sorted(truth.items()):
        pred_path = pred_dir / f"{case}{_SEG}"
        if not pred_path.is_file():
            failed[case] = f"case {case!r}: no prediction {pred_path}"
            continue
        try:
            rows += _evaluate_case(
                case, pred_path, gt_path, labels=labels, atol=atol, max_hd95=max_hd95
            )
        except (ValueError, OSError, EOFError) as err:
            failed[case] = str(err)
    for p in sorted(pred_dir.glob(f"*{_SEG}")):
        case = p.name[: -len(_SEG)]
        if case not in truth:
            failed[case] = f"case {case!r}: prediction {p} has no ground truth"
    result = SegEvaluation(rows=rows, summary=summarise(rows), failed=failed)
    stem = out.name.removesuffix(".csv")
    result.outputs["cases"] = write_csv_atomic(rows, out)
    result.outputs["summary"] = write_csv_atomic(
        result.summary, out.with_name(f"{stem}_summary.csv")
    )
    if boxplot and rows:
        from mrivol.evaluation.report_plots import save_metric_boxplot

        result.outputs["boxplot"] = save_metric_boxplot(
            rows, out.with_name(f"{stem}_boxplot.png"), title=f"{stem} ({len(truth)} cases)"
        )
    return result


def add_evaluate_seg_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``mrivol evaluate-seg`` options to ``parser``; returns it."""
    parser.add_argument("--pred", required=True, help="folder with <case>_seg.nii.gz")
    parser.add_argument(
        "--gt", required=True, help="ground truth: <case>_seg.nii.gz or <case>/<case>_seg.nii.gz"
    )
    parser.add_argument(
        "--labels",
        choices=("brats2021", "brats2023"),
        default="brats2021",
        help="label convention: ET is 4 (brats2021, default) or 3 (brats2023)",
    )
    parser.add_argument("--out", required=True, help="per-case CSV (summary and PNG go next to it)")
    parser.add_argument(
        "--atol", type=float, default=1e-3, help="affine tolerance of the grid check (mm)"
    )
    return parser


def main_evaluate_seg(args: argparse.Namespace) -> int:
    """Run ``mrivol evaluate-seg``: 0 when every case was evaluated, 1 when some failed."""
    result = evaluate_segmentations(
        args.pred, args.gt, out=args.out, labels=args.labels, atol=args.atol
    )
    for row in result.summary:
        parts = [f"{row['region']:>3s}", f"dice {row['dice_mean']:.4f} ± {row['dice_std']:.4f}"]
        parts.append(f"hd95 {row['hd95_mm_mean']:.2f} mm (median {row['hd95_mm_median']:.2f})")
        if "qu_score_mean" in row:
            parts.append(f"QU-BraTS {row['qu_score_mean']:.4f}")
        print("  ".join(parts))
    n_cases = len({r["case"] for r in result.rows})
    print(f"{n_cases} case(s) evaluated; " + ", ".join(str(p) for p in result.outputs.values()))
    if result.failed:
        print(f"{len(result.failed)} case(s) failed:", file=sys.stderr)
        for case, message in sorted(result.failed.items()):
            print(f"  {case}: {message}", file=sys.stderr)
        return 1
    return 0

"""Evaluate predicted BraTS label maps against ground truth: per-case CSV, summary, box plot.

``mrivol evaluate-seg --pred DIR --gt DIR --out FILE.csv``. Cases are matched by id
(:data:`PREDICTION_NAMES`, :func:`find_ground_truth`). Metrics: :func:`~mrivol.metrics.
segmentation_report` (Dice, BraTS HD95 in mm, sensitivity, specificity, volumes); with
``--challenge`` the lesion-wise scores (2023 / 2024 rules or the official 2025 evaluator); with
uncertainty maps QU-BraTS (Mehta et al., MELBA 2022). Uncertainty maps, first match wins:

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
from mrivol.metrics import (
    BRATS2025_CONFIGS,
    evaluate_2025_case,
    lesionwise_preset,
    lesionwise_report,
    qu_brats_report,
    rescale_uncertainty,
    segmentation_report,
)
from mrivol.metrics.uncertainty import LN2

__all__ = [
    "GridMismatchError",
    "SegEvaluation",
    "add_evaluate_seg_arguments",
    "check_same_grid",
    "evaluate_segmentations",
    "find_ground_truth",
    "find_prediction",
    "main_evaluate_seg",
    "summarise",
]

_SEG = "_seg.nii.gz"
#: How predictions may be named, first match wins: mrivol's, a BraTS 2023+ submission, the
#: BraTS 2023 truth style (nnU-Net prediction folders use the submission name too).
PREDICTION_NAMES = ("{case}_seg.nii.gz", "{case}.nii.gz", "{case}-seg.nii.gz")
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
    naming: dict[str, int] = field(default_factory=dict)  # prediction name rule -> cases


def find_ground_truth(gt_dir: str | Path) -> dict[str, Path]:
    """Ground-truth label maps under ``gt_dir`` by case id (flat or BraTS layout).

    Raises:
        FileNotFoundError: if ``gt_dir`` is missing or holds no ``*_seg.nii.gz``.
    """
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"ground-truth folder {gt_dir} does not exist")
    found = {p.name[: -len(_SEG)]: p for p in sorted(gt_dir.glob(f"*{_SEG}"))}
    for suffix in (_SEG, "-seg.nii.gz"):  # BraTS 2021 and BraTS 2023+ case folders
        for p in sorted(gt_dir.glob(f"*/*{suffix}")):
            if p.name == f"{p.parent.name}{suffix}":
                found.setdefault(p.parent.name, p)
    if not found:  # an nnU-Net labelsTr folder: <case>.nii.gz
        found = {p.name[: -len(".nii.gz")]: p for p in sorted(gt_dir.glob("*.nii.gz"))}
    if not found:
        raise FileNotFoundError(
            f"no ground truth in {gt_dir}: expected <case>{_SEG}, <case>/<case>{_SEG}, "
            "<case>/<case>-seg.nii.gz (BraTS 2023+) or <case>.nii.gz (nnU-Net labelsTr)"
        )
    return found


def find_prediction(pred_dir: Path, case: str) -> tuple[Path, str] | None:
    """The prediction of ``case`` and the :data:`PREDICTION_NAMES` rule it matched, or ``None``."""
    for rule in PREDICTION_NAMES:
        path = pred_dir / rule.format(case=case)
        if path.is_file():
            return path, rule
    return None


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
    case: str,
    pred_path: Path,
    gt_path: Path,
    *,
    labels: str,
    atol: float,
    max_hd95: float | None,
    challenge: str | None = None,
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
    if challenge in BRATS2025_CONFIGS:  # the official evaluator reads the files itself
        lesionwise = evaluate_2025_case(case, pred_path, gt_path, challenge)
    elif challenge is not None:
        if labels == "brats2021":  # the lesion-wise rules read 2023 labels: ET 4 -> 3
            pred, truth = (np.where(a == 4, 3, a) for a in (pred, truth))
        lesionwise = lesionwise_report(pred, truth, spacing=spacing, rules=challenge, case_id=case)
    return rows if challenge is None else _with_lesionwise(rows, lesionwise, case)


def _check_challenge(challenge: str | None, labels: str) -> None:
    """Fail before any case on an unknown name, or 2021 labels for the 2025 evaluator."""
    if challenge in BRATS2025_CONFIGS and labels != "brats2023":
        raise ValueError(
            f"{challenge}: the BraTS 2025 evaluator reads BraTS 2023+ labels (ET = 3, 4 is the "
            "resection cavity); pass --labels brats2023 with maps in that convention."
        )
    if challenge is not None and challenge not in BRATS2025_CONFIGS:
        lesionwise_preset(challenge)


def _with_lesionwise(
    rows: list[dict[str, Any]], lesionwise: list[dict[str, Any]], case: str
) -> list[dict[str, Any]]:
    """Legacy rows (lower-case regions) joined with the lesion-wise ones; NETC, RC... added."""
    legacy = {r["region"].lower(): {**r, "region": r["region"].lower()} for r in rows}
    for row in lesionwise:
        legacy.setdefault(row["region"], {"case": case, "region": row["region"]}).update(row)
    return list(legacy.values())


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
    challenge: str | None = None,
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
        challenge: lesion-wise rules (:data:`mrivol.metrics.LESIONWISE_PRESETS`, e.g.
            ``"BraTS-GLI"`` for the 2023 rules, ``"BraTS-GLI-2024"``) or a 2025 challenge
            (:data:`mrivol.metrics.brats2025.BRATS2025_CONFIGS`, the official evaluator, which
            adds its F1, panoptic and global columns): adds
            ``lesionwise_dice``, ``lesionwise_hd95``, ``num_tp``, ``num_fp``, ``num_fn`` to
            every row (region names lower case); ``None``: the legacy metrics only. Maps in
            the 2021 convention are scored with ET (4) read as the rules' ET (3).

    Returns:
        A :class:`SegEvaluation`.

    Raises:
        FileNotFoundError: if ``pred_dir`` or the ground truth folder does not exist.
    """
    pred_dir, out = Path(pred_dir), Path(out)
    _check_challenge(challenge, labels)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction folder {pred_dir} does not exist")
    truth = (
        {str(k): Path(v) for k, v in ground_truth.items()}
        if isinstance(ground_truth, Mapping)
        else find_ground_truth(ground_truth)
    )
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    result_rules: dict[str, int] = dict.fromkeys(PREDICTION_NAMES, 0)
    for case, gt_path in sorted(truth.items()):
        found = find_prediction(pred_dir, case)
        if found is None:
            names = ", ".join(rule.format(case=case) for rule in PREDICTION_NAMES)
            failed[case] = f"case {case!r}: no prediction in {pred_dir} (looked for {names})"
            continue
        pred_path, rule = found
        result_rules[rule] += 1
        try:
            rows += _evaluate_case(
                case,
                pred_path,
                gt_path,
                labels=labels,
                atol=atol,
                max_hd95=max_hd95,
                challenge=challenge,
            )
        except (ValueError, OSError, EOFError) as err:
            failed[case] = str(err)
    for p in sorted(pred_dir.glob(f"*{_SEG}")):
        case = p.name[: -len(_SEG)]
        if case not in truth:
            failed[case] = f"case {case!r}: prediction {p} has no ground truth"
    result = SegEvaluation(rows=rows, summary=summarise(rows), failed=failed)
    result.naming = {rule: n for rule, n in result_rules.items() if n}
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
    parser.add_argument(
        "--pred",
        required=True,
        help="folder with <case>_seg.nii.gz, <case>.nii.gz (BraTS 2023+ submissions) or "
        "<case>-seg.nii.gz",
    )
    parser.add_argument(
        "--gt", required=True, help="ground truth: <case>_seg.nii.gz or <case>/<case>_seg.nii.gz"
    )
    parser.add_argument(
        "--labels",
        choices=("brats2021", "brats2023"),
        default=None,
        help="label convention: ET is 4 (brats2021) or 3 (brats2023); default brats2021, or "
        "brats2023 with --challenge",
    )
    parser.add_argument(
        "--challenge",
        default=None,
        help="add the lesion-wise metrics of these rules: BraTS-GLI, BraTS-SSA, BraTS-MEN, "
        "BraTS-PED, BraTS-MET (2023 rules), BraTS-<challenge>-2024 (2024 rules), or "
        f"{', '.join(BRATS2025_CONFIGS)} (the official 2025 evaluator)",
    )
    parser.add_argument("--out", required=True, help="per-case CSV (summary and PNG go next to it)")
    parser.add_argument(
        "--atol", type=float, default=1e-3, help="affine tolerance of the grid check (mm)"
    )
    return parser


def main_evaluate_seg(args: argparse.Namespace) -> int:
    """Run ``mrivol evaluate-seg``: 0 when every case was evaluated, 1 when some failed."""
    labels = args.labels or ("brats2023" if args.challenge else "brats2021")
    result = evaluate_segmentations(
        args.pred, args.gt, out=args.out, labels=labels, atol=args.atol, challenge=args.challenge
    )
    for rule, n in result.naming.items():
        print(f"predictions named {rule}: {n} case(s)")
    for row in result.summary:
        parts = [f"{row['region']:>4s}"]
        if "dice_mean" in row:
            parts.append(f"dice {row['dice_mean']:.4f} ± {row['dice_std']:.4f}")
            parts.append(f"hd95 {row['hd95_mm_mean']:.2f} mm (median {row['hd95_mm_median']:.2f})")
        if "lesionwise_dice_mean" in row:
            parts.append(f"lesion-wise dice {row['lesionwise_dice_mean']:.4f}")
            parts.append(f"lesion-wise hd95 {row['lesionwise_hd95_mean']:.2f} mm")
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

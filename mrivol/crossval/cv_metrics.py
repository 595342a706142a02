"""Cross-validation metrics: pooled over every out-of-fold case, and their spread over folds.

Pooled metrics (``cv_*``) average every OOF case once, whatever its fold; the fold spread
(``cv_fold_<metric>_mean`` / ``_std``, std with ddof 1 over at least two folds) summarises the
per-fold means, which are also returned per fold (logged as ``cv_fold_<metric>`` with the fold
as the step). Segmentation on the original grids is scored by
:func:`mrivol.evaluation.evaluate_segmentations` (legacy Dice / HD95 and, under the bundle's
lesion-wise rules, lesion-wise Dice / HD95); classification by
:func:`mrivol.metrics.classification_report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrivol.evaluation.report_plots import save_metric_boxplot
from mrivol.evaluation.seg_evaluation import evaluate_segmentations
from mrivol.io import write_csv_atomic
from mrivol.metrics.classification import classification_report, write_classification_report

__all__ = [
    "CvScores",
    "classification_cv_metrics",
    "grid_segmentation_cv_metrics",
    "segmentation_cv_metrics",
]

SEG_METRICS = {  # row column -> cv metric stem
    "dice": "dice",
    "hd95_mm": "hd95",
    "lesionwise_dice": "lesionwise_dice",
    "lesionwise_hd95": "lesionwise_hd95",
}


@dataclass
class CvScores:
    """What the pooled scoring produced.

    Attributes:
        metrics: ``cv_*`` metrics of the parent run.
        per_fold: ``{metric: {fold: value}}`` (logged with the fold as the step).
        rows: the per-case rows (with ``fold``).
        files: reports written (logged as artifacts).
    """

    metrics: dict[str, float] = field(default_factory=dict)
    per_fold: dict[str, dict[int, float]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _mean(values: Sequence[Any]) -> float:
    finite = [float(v) for v in values if v not in (None, "") and np.isfinite(float(v))]
    return float(np.mean(finite)) if finite else float("nan")


def _spread(scores: CvScores, name: str, by_fold: Mapping[int, float]) -> None:
    scores.per_fold[f"cv_fold_{name}"] = dict(sorted(by_fold.items()))
    values = [v for v in by_fold.values() if np.isfinite(v)]
    if values:
        scores.metrics[f"cv_fold_{name}_mean"] = float(np.mean(values))
    if len(values) > 1:
        scores.metrics[f"cv_fold_{name}_std"] = float(np.std(values, ddof=1))


def _region_metrics(scores: CvScores, rows: Sequence[Mapping[str, Any]]) -> None:
    """``cv_<stem>`` (mean over cases and regions) and ``cv_<stem>_<region>`` of the rows."""
    for column, stem in SEG_METRICS.items():
        have = [r for r in rows if r.get(column) not in (None, "")]
        if not have:
            continue
        scores.metrics["cv_mean_dice" if stem == "dice" else f"cv_{stem}"] = _mean(
            [r[column] for r in have]
        )
        for region in dict.fromkeys(str(r["region"]).lower() for r in have):
            values = [r[column] for r in have if str(r["region"]).lower() == region]
            scores.metrics[f"cv_{stem}_{region}"] = _mean(values)
    folds = sorted({int(r["fold"]) for r in rows})
    by_fold = {
        k: _mean([r["dice"] for r in rows if int(r["fold"]) == k and "dice" in r]) for k in folds
    }
    _spread(scores, "mean_dice", by_fold)


def _fold_boxplot(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    """One box per region and fold (``TC f0``, ``TC f1``, ...), a panel per metric."""
    ordered = sorted(rows, key=lambda r: (str(r["region"]).lower(), int(r["fold"])))
    relabelled = [{**r, "region": f"{str(r['region']).upper()} f{r['fold']}"} for r in ordered]
    return save_metric_boxplot(relabelled, path, title=title)


def segmentation_cv_metrics(
    *,
    oof_dir: Path,
    out_dir: Path,
    truth: Mapping[str, str | Path],
    case_fold: Mapping[str, int],
    labels: str,
    challenge: str | None,
) -> CvScores:
    """Score the OOF label maps against the truth, pooled and per fold.

    Writes ``oof_per_case.csv`` (case, fold, region, metrics), ``oof_summary.csv`` and
    ``oof_boxplot.png`` (a box per region and fold) to ``out_dir``.

    Raises:
        ValueError: cases that could not be scored (the message lists them with the reason).
    """
    result = evaluate_segmentations(
        oof_dir,
        truth,
        out=out_dir / "oof_seg_metrics.csv",
        labels=labels,
        challenge=challenge,
        boxplot=False,
    )
    if result.failed:
        problems = "; ".join(f"{c}: {m}" for c, m in sorted(result.failed.items()))
        raise ValueError(f"OOF predictions in {oof_dir} could not be scored: {problems}")
    for path in result.outputs.values():
        path.unlink(missing_ok=True)  # replaced by the files below, with the fold column
    rows = [{"case": r["case"], "fold": int(case_fold[r["case"]]), **r} for r in result.rows]
    scores = CvScores(rows=rows)
    _region_metrics(scores, rows)
    scores.files.append(write_csv_atomic(rows, out_dir / "oof_per_case.csv"))
    scores.files.append(write_csv_atomic(result.summary, out_dir / "oof_summary.csv"))
    n = len({r["case"] for r in rows})
    scores.files.append(_fold_boxplot(rows, out_dir / "oof_boxplot.png", f"out-of-fold, {n} cases"))
    return scores


def grid_segmentation_cv_metrics(rows: Sequence[Mapping[str, Any]], *, out_dir: Path) -> CvScores:
    """Pooled Dice / HD95 of segmentation rows scored on the network's grid (multi-task).

    Writes ``oof_per_case.csv`` and ``oof_boxplot.png``.
    """
    rows = [dict(r) for r in rows]
    scores = CvScores(rows=rows)
    _region_metrics(scores, rows)
    scores.files.append(write_csv_atomic(rows, out_dir / "oof_per_case.csv"))
    scores.files.append(
        _fold_boxplot(rows, out_dir / "oof_boxplot.png", "out-of-fold (network grid)")
    )
    return scores


def classification_cv_metrics(
    rows: Sequence[Mapping[str, Any]],
    *,
    class_names: Sequence[str],
    out_dir: Path,
    table: str = "oof_per_case.csv",
) -> CvScores:
    """Pooled balanced accuracy, per-class recall, ROC-AUC and confusion matrix of OOF classes.

    Writes ``table`` (case, fold, label, predicted, probabilities) and, prefixed ``oof_``,
    :func:`mrivol.metrics.write_classification_report`'s CSVs and ``confusion_matrix.png``.
    """
    rows = [dict(r) for r in rows]
    probs = np.array([[r[f"prob_{c}"] for c in class_names] for r in rows], dtype=np.float64)
    labels = [int(r["label"]) for r in rows]
    report = classification_report(labels, probabilities=probs, class_names=list(class_names))
    scores = CvScores(rows=rows)
    m = scores.metrics
    m["cv_balanced_accuracy"] = report.balanced_accuracy
    m["cv_accuracy"] = report.accuracy
    m["cv_macro_f1"] = float(report.f1.mean())
    if np.isfinite(report.roc_auc_macro):
        m["cv_auc"] = report.roc_auc_macro
    for name, recall in zip(class_names, report.recall, strict=True):
        m[f"cv_recall_{name}"] = float(recall)
    by_fold = {}
    for k in sorted({int(r["fold"]) for r in rows}):
        picked = [r for r in rows if int(r["fold"]) == k]
        fold_report = classification_report(
            [int(r["label"]) for r in picked],
            [int(r["predicted"]) for r in picked],
            num_classes=len(class_names),
        )
        by_fold[k] = fold_report.balanced_accuracy
    _spread(scores, "balanced_accuracy", by_fold)
    scores.files.append(write_csv_atomic(rows, out_dir / table))
    scores.files += list(write_classification_report(report, out_dir, prefix="oof_").values())
    return scores

"""Classification metrics (accuracy, per-class scores, one-vs-rest ROC-AUC) and their reports.

Definitions and zero-division rules follow scikit-learn (``sklearn.metrics``) so the numbers
match it; scikit-learn is only a test reference, not a runtime dependency:

* confusion matrix ``C[i, j]`` = samples of true class ``i`` predicted as ``j``;
* precision / recall / F1 with a zero denominator are 0 (``zero_division=0``);
  specificity ``TN / (TN + FP)`` likewise;
* balanced accuracy = mean recall over the classes present in ``y_true``
  (``balanced_accuracy_score``);
* ROC-AUC one-vs-rest per class from probabilities, via the Mann-Whitney U statistic with
  tied scores counted half (equal to ``roc_auc_score(y_true == k, proba[:, k])``); ``nan``
  for a class with no positive or no negative sample. The macro AUC averages the defined
  per-class values (sklearn's ``multi_class="ovr"`` macro when all are defined).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from mrivol.io import save_figure_atomic, write_csv_atomic

__all__ = [
    "ClassificationReport",
    "classification_report",
    "confusion_matrix",
    "roc_auc_ovr",
    "write_classification_report",
]


def _labels(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1D (N,), got shape {arr.shape}.")
    if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError(f"{name} must hold integer class indices, got {arr.dtype} values.")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} holds negative class indices; classes are 0..K-1.")
    return arr


def confusion_matrix(y_true: Any, y_pred: Any, *, num_classes: int | None = None) -> np.ndarray:
    """Return the (K, K) confusion matrix, rows = true class, columns = predicted class.

    Args:
        y_true: true class indices of shape (N,).
        y_pred: predicted class indices of shape (N,).
        num_classes: K; ``None`` takes ``max(y_true, y_pred) + 1``.

    Returns:
        int64 array of shape (K, K).

    Raises:
        ValueError: If lengths differ or an index is outside [0, K).

    Examples:
        >>> confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
        [[1, 0], [1, 1]]
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} samples but y_pred has {p.size}.")
    k = int(max(t.max(initial=-1), p.max(initial=-1)) + 1) if num_classes is None else num_classes
    if t.size and max(t.max(), p.max()) >= k:
        raise ValueError(f"class index >= num_classes={k}; pass the right num_classes.")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def roc_auc_ovr(y_true: Any, probabilities: Any) -> np.ndarray:
    """Return the one-vs-rest ROC-AUC of each class from class probabilities.

    Args:
        y_true: true class indices of shape (N,).
        probabilities: scores of shape (N, K) (softmax outputs or any monotone score).

    Returns:
        float64 array of shape (K,); ``nan`` where a class has no positive or no negative.

    Raises:
        ValueError: If the shapes disagree.

    Examples:
        >>> roc_auc_ovr([0, 1, 1], [[0.9, 0.1], [0.4, 0.6], [0.6, 0.4]]).tolist()
        [1.0, 1.0]
    """
    t = _labels(y_true, "y_true")
    proba = np.asarray(probabilities, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] != t.size:
        raise ValueError(f"probabilities must have shape (N={t.size}, K), got {proba.shape}.")
    aucs = np.full(proba.shape[1], np.nan)
    for k in range(proba.shape[1]):
        pos = t == k
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(proba[:, k])  # average ranks: ties count half
        aucs[k] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return aucs


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


@dataclass
class ClassificationReport:
    """Metrics of one classification evaluation.

    Attributes:
        class_names: name of each class, length K.
        confusion: (K, K) confusion matrix, rows true, columns predicted.
        accuracy: fraction of correct predictions.
        balanced_accuracy: mean recall over classes present in ``y_true``.
        precision, recall, specificity, f1, support: per-class arrays of shape (K,).
        roc_auc: per-class one-vs-rest ROC-AUC (K,), ``None`` without probabilities.
    """

    class_names: list[str]
    confusion: np.ndarray
    accuracy: float
    balanced_accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    specificity: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    roc_auc: np.ndarray | None = None

    @property
    def roc_auc_macro(self) -> float:
        """Mean of the defined per-class ROC-AUCs (``nan`` if none or no probabilities)."""
        if self.roc_auc is None or np.all(np.isnan(self.roc_auc)):
            return float("nan")
        return float(np.nanmean(self.roc_auc))

    def per_class_rows(self) -> list[dict[str, Any]]:
        """Return one dict per class (for CSV / MLflow tables)."""
        rows = []
        for i, name in enumerate(self.class_names):
            row: dict[str, Any] = {
                "class": name,
                "support": int(self.support[i]),
                "precision": float(self.precision[i]),
                "recall": float(self.recall[i]),
                "specificity": float(self.specificity[i]),
                "f1": float(self.f1[i]),
            }
            if self.roc_auc is not None:
                row["roc_auc"] = float(self.roc_auc[i])
            rows.append(row)
        return rows

    def summary(self) -> dict[str, float]:
        """Return the scalar metrics (accuracy, balanced accuracy, macro averages)."""
        out = {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "macro_precision": float(self.precision.mean()),
            "macro_recall": float(self.recall.mean()),
            "macro_specificity": float(self.specificity.mean()),
            "macro_f1": float(self.f1.mean()),
        }
        if self.roc_auc is not None:
            out["macro_roc_auc"] = self.roc_auc_macro
        return out


def classification_report(
    y_true: Any,
    y_pred: Any | None = None,
    *,
    probabilities: Any | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> ClassificationReport:
    """Compute accuracy, balanced accuracy, per-class scores, ROC-AUC and the confusion matrix.

    Args:
        y_true: true class indices of shape (N,).
        y_pred: predicted class indices of shape (N,); ``None`` takes the argmax of
            ``probabilities``.
        probabilities: class probabilities of shape (N, K), for ROC-AUC.
        num_classes: K; ``None`` infers it from ``class_names``, ``probabilities`` or the
            labels.
        class_names: names of the K classes; default ``"0" .. "K-1"``.

    Returns:
        A :class:`ClassificationReport`.

    Raises:
        ValueError: If inputs are missing, inconsistent or out of range.

    Examples:
        >>> r = classification_report([0, 1, 1, 2], [0, 1, 0, 2])
        >>> r.accuracy, round(r.balanced_accuracy, 4), r.recall.tolist()
        (0.75, 0.8333, [1.0, 0.5, 1.0])
    """
    if y_pred is None and probabilities is None:
        raise ValueError("Give y_pred, probabilities, or both.")
    t = _labels(y_true, "y_true")
    if t.size == 0:
        raise ValueError("y_true is empty: nothing to evaluate.")
    proba = None if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    if y_pred is None and proba is not None:
        y_pred = np.argmax(proba, axis=1)
    k = num_classes
    if k is None and class_names is not None:
        k = len(class_names)
    if k is None and proba is not None:
        k = proba.shape[1]
    cm = confusion_matrix(t, y_pred, num_classes=k)
    k = cm.shape[0]
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"{len(class_names)} class_names given for {k} classes.")
    if proba is not None and (proba.ndim != 2 or proba.shape[1] != k):
        raise ValueError(f"probabilities must have shape (N, {k}), got {proba.shape}.")
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    fp, fn = predicted - tp, support - tp
    tn = cm.sum() - tp - fp - fn
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
    present = support > 0
    return ClassificationReport(
        class_names=[str(c) for c in (class_names or range(k))],
        confusion=cm,
        accuracy=float(tp.sum() / cm.sum()),
        balanced_accuracy=float(recall[present].mean()),
        precision=precision,
        recall=recall,
        specificity=_safe_div(tn, tn + fp),
        f1=f1,
        support=support,
        roc_auc=None if proba is None else roc_auc_ovr(t, proba),
    )


def _plot_confusion(report: ClassificationReport, title: str, path: Path) -> None:
    from matplotlib.figure import Figure  # Agg canvas, no global pyplot state

    cm = report.confusion
    k = cm.shape[0]
    fig = Figure(figsize=(1.2 + 0.6 * k, 1.0 + 0.6 * k), dpi=120)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xticklabels=report.class_names,
        yticklabels=report.class_names,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            color = "white" if cm[i, j] > threshold else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color)
    fig.tight_layout()
    save_figure_atomic(fig, path, format="png")


def write_classification_report(
    report: ClassificationReport, out_dir: str | os.PathLike[str], *, prefix: str = ""
) -> dict[str, Path]:
    """Write the report as CSV files and a confusion-matrix PNG, each atomically.

    Files (in ``out_dir``, names prefixed by ``prefix``): ``classification_summary.csv``
    (metric, value), ``classification_per_class.csv``, ``confusion_matrix.csv`` and
    ``confusion_matrix.png``. Each is written to a temporary file and renamed, so a reader
    (e.g. an MLflow artifact upload) never sees a half-written file.

    Args:
        report: output of :func:`classification_report`.
        out_dir: destination folder (created if missing).
        prefix: prepended to every file name (e.g. ``"fold0_"``).

    Returns:
        ``{"summary", "per_class", "confusion_csv", "confusion_png"}`` -> path.

    Raises:
        OSError: If the folder cannot be created or written.

    Examples:
        >>> import tempfile
        >>> r = classification_report([0, 1], [0, 1])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     sorted(write_classification_report(r, d))
        ['confusion_csv', 'confusion_png', 'per_class', 'summary']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out / f"{prefix}classification_summary.csv",
        "per_class": out / f"{prefix}classification_per_class.csv",
        "confusion_csv": out / f"{prefix}confusion_matrix.csv",
        "confusion_png": out / f"{prefix}confusion_matrix.png",
    }
    summary_rows = [{"metric": k, "value": v} for k, v in report.summary().items()]
    names = report.class_names
    cm_rows = [
        {"true": name, **{f"pred_{c}": int(v) for c, v in zip(names, row, strict=True)}}
        for name, row in zip(names, report.confusion, strict=True)
    ]
    write_csv_atomic(summary_rows, paths["summary"])
    write_csv_atomic(report.per_class_rows(), paths["per_class"])
    write_csv_atomic(cm_rows, paths["confusion_csv"])
    _plot_confusion(report, f"{prefix}confusion matrix", paths["confusion_png"])
    return paths

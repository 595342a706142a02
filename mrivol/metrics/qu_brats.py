"""QU-BraTS uncertainty score: Dice and filtered TP / TN ratios as uncertain voxels are removed.

Mehta et al., "QU-BraTS: MICCAI BraTS 2020 Challenge on Quantifying Uncertainty in Brain
Tumor Segmentation - Analysis of Ranking Scores and Benchmarking Results", MELBA 2022.
Reference code: github.com/RagMeh11/QU-BraTS, ``BraTS_Seg_Uncertainty.py`` (functions
``dice_metric``, ``ftp_ratio_metric``, ``ftn_ratio_metric``, ``make``, ``evaluate``).

Conventions copied from the reference code:

* Uncertainty is on a 0-100 scale (100 = most uncertain); see :func:`rescale_uncertainty`.
* For each threshold ``tau`` a voxel is *filtered out* when ``uncertainty > tau`` (strictly
  greater: a voxel whose uncertainty equals ``tau`` is kept).
* Dice is computed on the retained voxels (``truth * keep``, ``pred * keep``), over the whole
  image (no brain mask); both empty -> 1.
* FTP ratio = ``(TP_before - TP_after) / (TP_before + eps)`` and FTN ratio likewise for true
  negatives, both counted inside the brain mask, ``eps = np.finfo(np.float32).eps``.
* Each AUC is ``sklearn.metrics.auc(thresholds, values) / 100``: the trapezoidal area over
  the thresholds, normalised by the 0-100 range (the reference passes thresholds in
  decreasing order; ``auc`` then flips the sign, so the area is positive).
* Score = ``(AUC_Dice + (1 - AUC_FTP) + (1 - AUC_FTN)) / 3`` (paper, Section 3.3).

The paper uses thresholds 100, 75, 50, 25, 0 (the default here); the script's ``num_points``
gives ``np.arange(0, 100 + eps, 100 / num_points)`` reversed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mrivol.metrics.brats_regions import BRATS_REGIONS, brats_region_masks

__all__ = [
    "DEFAULT_QU_THRESHOLDS",
    "QUBraTSResult",
    "qu_brats_region",
    "qu_brats_report",
    "rescale_uncertainty",
]

#: Uncertainty thresholds of the QU-BraTS paper (0-100 scale, most to least permissive).
DEFAULT_QU_THRESHOLDS: tuple[float, ...] = (100.0, 75.0, 50.0, 25.0, 0.0)

_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class QUBraTSResult:
    """QU-BraTS curves and scores of one region.

    Attributes:
        thresholds: the thresholds ``tau`` (0-100), in the order given.
        dice: Dice of the retained voxels at each threshold.
        ftp_ratio: filtered true-positive ratio at each threshold.
        ftn_ratio: filtered true-negative ratio at each threshold.
        auc_dice: area under Dice vs threshold, normalised to [0, 1].
        auc_ftp: area under FTP ratio vs threshold, normalised.
        auc_ftn: area under FTN ratio vs threshold, normalised.
        score: ``(auc_dice + (1 - auc_ftp) + (1 - auc_ftn)) / 3``.
    """

    thresholds: tuple[float, ...]
    dice: tuple[float, ...]
    ftp_ratio: tuple[float, ...]
    ftn_ratio: tuple[float, ...]
    auc_dice: float
    auc_ftp: float
    auc_ftn: float
    score: float

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (tuples kept)."""
        return asdict(self)


def rescale_uncertainty(
    uncertainty: Any, *, min_value: float | None = None, max_value: float | None = None
) -> np.ndarray:
    """Map an uncertainty map linearly onto the 0-100 scale QU-BraTS expects.

    Args:
        uncertainty: uncertainty map of shape (H, W, D) (entropy, variance, ...).
        min_value: value mapped to 0; ``None`` takes the map's minimum. Use a fixed value
            (e.g. 0) to compare cases on one scale.
        max_value: value mapped to 100; ``None`` takes the map's maximum (e.g. pass
            ``np.log(2)`` for the entropy of a binary prediction in nats).

    Returns:
        float64 map in [0, 100] (values outside the range are clipped; a constant map
        gives zeros).

    Raises:
        ValueError: If the map holds non-finite values or ``max_value <= min_value``.

    Examples:
        >>> rescale_uncertainty([0.0, 0.25, 0.5], max_value=0.5).tolist()
        [0.0, 50.0, 100.0]
    """
    u = np.asarray(uncertainty, dtype=np.float64)
    if not np.all(np.isfinite(u)):
        raise ValueError("uncertainty map holds NaN or inf values; fix the map before scoring.")
    lo = float(u.min()) if min_value is None else float(min_value)
    hi = float(u.max()) if max_value is None else float(max_value)
    if hi < lo or (hi == lo and (min_value is not None or max_value is not None)):
        raise ValueError(f"max_value ({hi}) must be greater than min_value ({lo}).")
    if hi == lo:
        return np.zeros_like(u)
    return np.clip((u - lo) / (hi - lo) * 100.0, 0.0, 100.0)


def _check_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"thresholds must hold at least two values, got {thresholds!r}.")
    d = np.diff(t)
    if not (np.all(d < 0) or np.all(d > 0)):
        raise ValueError(f"thresholds must be strictly monotonic, got {thresholds!r}.")
    if t.min() < 0 or t.max() > 100:
        raise ValueError(f"thresholds must lie in [0, 100], got {thresholds!r}.")
    return t


def _auc(thresholds: np.ndarray, values: np.ndarray) -> float:
    order = np.argsort(thresholds)
    return float(np.trapezoid(values[order], thresholds[order]) / 100.0)


def qu_brats_region(
    pred: Any,
    true: Any,
    uncertainty: Any,
    *,
    brain_mask: Any | None = None,
    thresholds: Sequence[float] = DEFAULT_QU_THRESHOLDS,
) -> QUBraTSResult:
    """Compute the QU-BraTS curves, AUCs and score of one binary region.

    Args:
        pred: predicted binary mask of shape (H, W, D).
        true: ground-truth binary mask of shape (H, W, D).
        uncertainty: uncertainty of ``pred`` on the 0-100 scale, shape (H, W, D).
        brain_mask: voxels counted for FTP / FTN (the reference uses ``T1 > 0``);
            ``None`` counts every voxel, which inflates the true negatives.
        thresholds: uncertainty thresholds ``tau``, strictly monotonic, within [0, 100].

    Returns:
        A :class:`QUBraTSResult`.

    Raises:
        ValueError: If shapes differ, uncertainty is outside [0, 100] or thresholds are
            invalid.

    Examples:
        >>> import numpy as np
        >>> t = np.array([1, 1, 0, 0]).reshape(1, 1, 4)
        >>> p = np.array([1, 0, 1, 0]).reshape(1, 1, 4)
        >>> u = np.array([0, 100, 100, 0]).reshape(1, 1, 4)  # uncertain exactly where wrong
        >>> round(qu_brats_region(p, t, u).score, 4)  # Dice at tau=100 is 0.5
        0.9792
    """
    t_arr = _check_thresholds(thresholds)
    p = np.asarray(pred).astype(bool)
    y = np.asarray(true).astype(bool)
    u = np.asarray(uncertainty, dtype=np.float64)
    brain = np.ones_like(y) if brain_mask is None else np.asarray(brain_mask) > 0
    shapes = {p.shape, y.shape, u.shape, brain.shape}
    if len(shapes) != 1:
        raise ValueError(
            f"pred {p.shape}, true {y.shape}, uncertainty {u.shape} and brain_mask "
            f"{brain.shape} must have the same shape."
        )
    if not np.all(np.isfinite(u)) or u.min() < 0 or u.max() > 100:
        raise ValueError(
            "uncertainty must be finite and on the 0-100 scale; rescale it with "
            "mrivol.metrics.rescale_uncertainty first."
        )
    tp = p & y & brain
    tn = ~p & ~y & brain
    tp_before, tn_before = int(tp.sum()), int(tn.sum())
    dice, ftp, ftn = [], [], []
    for tau in t_arr:
        keep = u <= tau  # reference: unc_mask[uncertainties > th] = 0
        p_k, y_k = p & keep, y & keep
        union = int(p_k.sum()) + int(y_k.sum())
        inter = int((p_k & y_k).sum())
        dice.append(1.0 if union == 0 and inter == 0 else 2.0 * inter / union)
        ftp.append((tp_before - int((tp & keep).sum())) / (tp_before + _EPS))
        ftn.append((tn_before - int((tn & keep).sum())) / (tn_before + _EPS))
    auc_dice = _auc(t_arr, np.array(dice))
    auc_ftp = _auc(t_arr, np.array(ftp))
    auc_ftn = _auc(t_arr, np.array(ftn))
    return QUBraTSResult(
        thresholds=tuple(float(x) for x in t_arr),
        dice=tuple(dice),
        ftp_ratio=tuple(ftp),
        ftn_ratio=tuple(ftn),
        auc_dice=auc_dice,
        auc_ftp=auc_ftp,
        auc_ftn=auc_ftn,
        score=(auc_dice + (1.0 - auc_ftp) + (1.0 - auc_ftn)) / 3.0,
    )


def qu_brats_report(
    pred_label: Any,
    true_label: Any,
    uncertainties: Mapping[str, Any],
    *,
    brain_mask: Any | None = None,
    labels: str = "brats2021",
    thresholds: Sequence[float] = DEFAULT_QU_THRESHOLDS,
    case_id: str | None = None,
) -> list[dict[str, Any]]:
    """Evaluate one case: QU-BraTS AUCs and score of the ET, TC and WT regions.

    Args:
        pred_label: predicted BraTS label map of shape (H, W, D).
        true_label: ground-truth label map of shape (H, W, D).
        uncertainties: ``{"ET": map, "TC": map, "WT": map}`` on the 0-100 scale, each
            (H, W, D) (the challenge asks for one map per region).
        brain_mask: voxels counted for FTP / FTN, shape (H, W, D); see
            :func:`qu_brats_region`.
        labels: label convention, ``"brats2021"`` or ``"brats2023"``.
        thresholds: uncertainty thresholds ``tau``.
        case_id: case identifier, copied into every row and used in error messages.

    Returns:
        One dict per region (ET, TC, WT) with ``case`` (if given), ``region``, ``auc_dice``,
        ``auc_ftp``, ``auc_ftn`` and ``score``.

    Raises:
        ValueError: If a region's map is missing or any input is invalid; the message
            names the case and region.

    Examples:
        >>> import numpy as np
        >>> y = np.zeros((4, 4, 4), np.int64); y[1:3, 1:3, 1:3] = 4
        >>> u = {r: np.zeros(y.shape) for r in ("ET", "TC", "WT")}
        >>> [round(r["score"], 3) for r in qu_brats_report(y, y, u)]
        [1.0, 1.0, 1.0]
    """
    where = f"case {case_id!r}" if case_id is not None else "qu_brats_report"
    missing = [r for r in BRATS_REGIONS if r not in uncertainties]
    if missing:
        raise ValueError(f"{where}: no uncertainty map for region(s) {missing}.")
    pred_masks = brats_region_masks(pred_label, labels=labels, name=f"{where} prediction")
    true_masks = brats_region_masks(true_label, labels=labels, name=f"{where} ground truth")
    rows = []
    for region in BRATS_REGIONS:
        try:
            res = qu_brats_region(
                pred_masks[region],
                true_masks[region],
                uncertainties[region],
                brain_mask=brain_mask,
                thresholds=thresholds,
            )
        except ValueError as err:
            raise ValueError(f"{where}, region {region}: {err}") from err
        row: dict[str, Any] = {"case": case_id} if case_id is not None else {}
        row.update(
            region=region,
            auc_dice=res.auc_dice,
            auc_ftp=res.auc_ftp,
            auc_ftn=res.auc_ftn,
            score=res.score,
        )
        rows.append(row)
    return rows

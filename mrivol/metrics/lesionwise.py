"""BraTS lesion-wise Dice and HD95 with the official 2023 and 2024 rules, computed lesion by box.

The rules of the official scripts (github.com/rachitsaluja/BraTS-2023-Metrics,
``brats_2023_metrics/surface_distance/brats_metrics.py`` and ``eval.py``; 2024:
github.com/rachitsaluja/BraTS-2024-Metrics, ``metrics_{GLI,PED,MET,SSA,MEN,MEN_RT}.py``),
for each region (results agree with a line-by-line transcription of the scripts run with
``cc3d`` and DeepMind's ``surface-distance`` on ~950 random region cases):

* **Truth lesions**: 26-connected components of the region mask; components whose dilations
  (``dilation`` iterations of the 3x3x3 cross ``generate_binary_structure(3, 2)``) fall in one
  26-connected component of the dilated mask are one lesion. Its volume is voxels times the
  voxel volume (mm^3).
* **Predicted lesions**: 2023 (and MEN 2024): 26-connected components. 2024 GLI, PED, MET, SSA,
  MEN-RT: combined by dilation like the truth, then predicted lesions whose size is at most
  the threshold are deleted (GLI / PED / MET / SSA compare the *voxel count*, MEN-RT mm^3).
* **Matching**: a predicted lesion matches every truth lesion whose dilated region it touches
  (one prediction may match several lesions). A lesion's Dice and HD95 are taken against the
  union of all its matches (whole components); no match: Dice 0, HD95 = penalty.
* **Small lesions**: truth lesions of volume <= threshold are left out of the scores, TP and FN
  whether found or not; predictions touching only such a lesion are not false positives.
* **FP**: predicted lesions touching no dilated truth lesion, whatever their size; each adds
  Dice 0 and HD95 = penalty. TP / FN: kept lesions with / without a match.
* **Score**: Dice = sum(kept Dice) / (kept + FP); HD95 = (sum(kept HD95) + FP * penalty) /
  (kept + FP); nothing to score: Dice 1, HD95 0 (both empty; only small lesions, none
  predicted elsewhere). Empty truth with a prediction: 0 and the penalty. MEN-RT 2024 leaves
  FPs out of both averages (it still counts them) and uses the voxel-grid diagonal
  ``sqrt(nx^2 + ny^2 + nz^2)`` (voxels, not mm) as penalty; GLI 2024 uses 337, the others 374.
* **2024 cross-region merging** and each preset's parameters:
  :mod:`mrivol.metrics.lesionwise_rules`.

Why by hand: the scripts are no package (pandas 1, NumPy 1) and dilate the whole volume once
per lesion; no library implements these rules. Here the image is split into islands too far
apart to interact, components are labelled once per region and island, and each lesion's Dice
and HD95 (:mod:`mrivol.metrics.surface_distance`) come from the box around it and its matches,
which holds both masks whole. Lesions are numbered by island, then in C raster order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from mrivol.metrics.lesionwise_rules import LesionwiseRegion, LesionwiseRules, lesionwise_preset
from mrivol.metrics.segmentation import dice_score
from mrivol.metrics.surface_distance import (
    check_spacing,
    compute_robust_hausdorff,
    compute_surface_distances,
)

__all__ = ["LesionScore", "LesionwiseResult", "lesionwise_region", "lesionwise_report"]

_CONN26 = ndimage.generate_binary_structure(3, 3)
_CROSS = ndimage.generate_binary_structure(3, 2)  # 18-neighbourhood: dilation and "touching"
_CROSS_OFFSETS = np.argwhere(_CROSS) - 1


@dataclass(frozen=True)
class LesionScore:
    """One truth lesion: id, volume (mm^3), Dice, HD95 (mm), matched predictions, counted."""

    lesion: int
    volume_mm3: float
    dice: float
    hd95: float
    matched: tuple[int, ...]
    counted: bool  # volume above the threshold: part of the scores and of TP / FN


@dataclass(frozen=True)
class LesionwiseResult:
    """Lesion-wise scores of one region, the per-lesion details and the unmatched predictions."""

    lesionwise_dice: float
    lesionwise_hd95: float
    num_tp: int
    num_fp: int
    num_fn: int
    lesions: tuple[LesionScore, ...]
    false_positives: tuple[int, ...]


@dataclass
class _Lesions:
    lesion: np.ndarray  # lesion id of every voxel of the mask, 0 elsewhere
    dilated: np.ndarray | None  # lesion id of every voxel of its dilated region (truth only)
    count: int


def _dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``binary_dilation`` with the cross, computed on the box of the mask only."""
    found = ndimage.find_objects(mask.view(np.uint8))
    out = np.zeros_like(mask)
    if found and iterations:
        box = tuple(slice(max(b.start - iterations, 0), b.stop + iterations) for b in found[0])
        out[box] = ndimage.binary_dilation(mask[box], _CROSS, iterations=iterations)
    return out if iterations else mask


def _combined_by_dilation(mask: np.ndarray, dilation: int) -> _Lesions:
    # one lesion per component of the dilated mask: its voxels of the mask are the lesion and,
    # since dilation distributes over union, the component itself is the lesion's dilation
    dilated_ids, count = ndimage.label(_dilate(mask, dilation), structure=_CONN26)
    return _Lesions(np.where(mask, dilated_ids, 0), dilated_ids, count)


def _predicted(
    mask: np.ndarray, region: LesionwiseRegion, rules: LesionwiseRules, voxel_mm3: float
) -> _Lesions:
    if rules.prediction_filter == "none":
        ids, count = ndimage.label(mask, structure=_CONN26)
        return _Lesions(ids, None, count)
    combined = _combined_by_dilation(mask, region.dilation)
    sizes = np.bincount(combined.lesion.ravel(), minlength=combined.count + 1)
    limit = region.volume_threshold_mm3
    keep = sizes > (limit if rules.prediction_filter == "voxels" else limit / voxel_mm3)
    keep[0] = False
    lut = np.zeros(len(sizes), np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return _Lesions(lut[combined.lesion], None, int(keep.sum()))


def _merge_touching(lesions: _Lesions, partner: np.ndarray) -> _Lesions:
    """Merge the lesions whose first touched partner lesion (lowest id) is the same."""
    if not lesions.count or not partner.any():
        return lesions
    coords = np.nonzero(_dilate(partner > 0, 1) & (lesions.lesion > 0))
    if not coords[0].size:
        return lesions
    padded, none = np.pad(partner, 1), np.iinfo(np.int64).max
    first = np.full(lesions.count + 1, none)
    ids = lesions.lesion[coords]
    for offset in _CROSS_OFFSETS:
        touched = padded[tuple(c + 1 + o for c, o in zip(coords, offset, strict=True))]
        np.minimum.at(first, ids[touched > 0], touched[touched > 0])
    keys = np.where(first < none, first, -np.arange(len(first)))[1:]  # untouched: own key
    _, first_member, group = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(first_member), np.int32)
    rank[np.argsort(first_member)] = np.arange(1, len(first_member) + 1)
    lut = np.concatenate([[0], rank[group]]).astype(np.int32)
    dilated = None if lesions.dilated is None else lut[lesions.dilated]
    return _Lesions(lut[lesions.lesion], dilated, len(first_member))


def _union_box(boxes: Sequence[tuple[slice, ...]]) -> tuple[slice, ...]:
    return tuple(
        slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3)
    )


def _score_lesions(
    true: _Lesions,
    pred: _Lesions,
    spacing: tuple[float, float, float],
    threshold: float,
    penalty: float,
    offsets: tuple[int, int],
) -> tuple[list[LesionScore], list[int]]:
    """Score every truth lesion; return the scores and the unmatched predicted lesions.

    ``offsets`` are added to the truth and predicted lesion ids (lesions of earlier islands).
    """
    assert true.dilated is not None
    both = (true.dilated > 0) & (pred.lesion > 0)
    pairs = np.unique(true.dilated[both].astype(np.int64) * (pred.count + 1) + pred.lesion[both])
    pair_true, pair_pred = np.divmod(pairs, pred.count + 1)
    split = np.searchsorted(pair_true, np.arange(1, true.count + 2))
    sizes = np.bincount(true.lesion.ravel(), minlength=true.count + 1)
    true_boxes = ndimage.find_objects(true.lesion, true.count)
    pred_boxes = ndimage.find_objects(pred.lesion, pred.count)
    sx, sy, sz = spacing
    lesions = []
    for j in range(1, true.count + 1):
        matched = pair_pred[split[j - 1] : split[j]]
        volume = float(sizes[j]) * sx * sy * sz  # the script's order of operations
        dice, hd95 = 0.0, penalty
        if matched.size:  # the box holds the lesion and its matches whole
            box = _union_box([true_boxes[j - 1], *(pred_boxes[p - 1] for p in matched)])
            t, p = true.lesion[box] == j, np.isin(pred.lesion[box], matched)
            dice = dice_score(p, t)
            hd95 = compute_robust_hausdorff(compute_surface_distances(t, p, spacing), 95.0)
        matches = tuple((matched + offsets[1]).tolist())
        lesions.append(LesionScore(j + offsets[0], volume, dice, hd95, matches, volume > threshold))
    unmatched = np.setdiff1d(np.arange(1, pred.count + 1), pair_pred) + offsets[1]
    return lesions, unmatched.tolist()


def _aggregate(
    lesions: list[LesionScore], fps: list[int], penalty: float, count_fp: bool
) -> LesionwiseResult:
    kept = [s for s in lesions if s.counted]
    n_fp = len(fps) if count_fp else 0
    if not kept and not n_fp:
        dice, hd95 = 1.0, 0.0
    else:
        dice = float(np.sum([s.dice for s in kept])) / (len(kept) + n_fp)
        hd95 = (float(np.sum([s.hd95 for s in kept])) + n_fp * penalty) / (len(kept) + n_fp)
    found = sum(1 for s in kept if s.matched)
    return LesionwiseResult(
        dice, hd95, found, len(fps), len(kept) - found, tuple(lesions), tuple(fps)
    )


def _compact_labels(a: np.ndarray, allowed: frozenset[int], where: str) -> np.ndarray:
    """Check that ``a`` holds only integral labels of the rules; return it as uint8."""
    discrete = np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)
    if not discrete and not (np.all(np.isfinite(a)) and np.all(a == np.round(a))):
        raise ValueError(
            f"{where}: label map holds non-integer values; pass a discrete label map "
            "(argmax), not probabilities."
        )
    if a.size and (a.min() < 0 or a.max() > 255):
        present = set(np.unique(a).tolist())
    else:
        a = a.astype(np.uint8)
        present = set(np.flatnonzero(np.bincount(a.ravel(), minlength=1)).tolist())
    unknown = present - allowed - {0}
    if unknown:
        raise ValueError(
            f"{where}: labels {sorted(unknown)} are not part of these rules (allowed "
            f"{sorted(allowed | {0})}); check the label convention."
        )
    return np.ascontiguousarray(a, dtype=np.uint8)


def _islands(foreground: np.ndarray, block: int) -> list[tuple[tuple[slice, ...], Any]]:
    """Boxes (and masks) of groups of foreground more than ``2 * block`` voxels apart.

    Blocks of ``block^3`` voxels with foreground, grown by one block, 26-connected: each box
    reaches ``block`` voxels past its foreground (inside the image), and where a box overlaps
    another island's blocks the mask keeps the island's own (else it is ``Ellipsis``).
    """
    padded = np.pad(foreground, [(0, -n % block) for n in foreground.shape])
    nx, ny, nz = (n // block for n in padded.shape)
    coarse = padded.reshape(nx, block, ny, block, nz, block).any(axis=(1, 3, 5))
    ids, _ = ndimage.label(ndimage.binary_dilation(coarse, _CONN26), _CONN26)
    islands = []
    for k, cbox in enumerate(ndimage.find_objects(ids), start=1):
        box = tuple(
            slice(c.start * block, min(c.stop * block, n))
            for c, n in zip(cbox, foreground.shape, strict=True)
        )
        own, mask = ids[cbox] == k, Ellipsis
        if np.any(~own & (ids[cbox] > 0)):
            mask = own.repeat(block, 0).repeat(block, 1).repeat(block, 2)
            mask = mask[tuple(slice(0, b.stop - b.start) for b in box)]
        islands.append((box, mask))
    return islands


def _evaluate(
    pred: np.ndarray, true: np.ndarray, spacing: Any, rules: LesionwiseRules, where: str
) -> dict[str, LesionwiseResult]:
    """Score two label maps; returns the reported regions in order."""
    if true.ndim != 3 or pred.shape != true.shape:
        raise ValueError(
            f"{where}: maps must be 3D with one shape, got {pred.shape} (prediction) and "
            f"{true.shape} (ground truth); resample the prediction onto the label grid."
        )
    sp = check_spacing(spacing, where=where)
    penalty = rules.hd95_penalty
    if penalty == "diagonal":
        penalty = math.sqrt(sum(n * n for n in true.shape))
    if isinstance(penalty, str) or not penalty > 0:
        raise ValueError(f"{where}: hd95_penalty must be > 0 or 'diagonal', got {penalty!r}.")
    foreground = pred != 0
    foreground |= true != 0
    # islands further apart than any interaction (dilations of two lesions: 2 * dilation + 1)
    block = max(8, max(r.dilation for r in rules.regions) + 1)
    lesions: dict[str, list[LesionScore]] = {r.name: [] for r in rules.regions}
    fps: dict[str, list[int]] = {r.name: [] for r in rules.regions}
    n_pred = dict.fromkeys(lesions, 0)
    for box, mask in _islands(foreground, block):
        p_box = _compact_labels(pred[box], rules.labels, f"{where} prediction")
        t_box = _compact_labels(true[box], rules.labels, f"{where} ground truth")
        if mask is not Ellipsis:
            p_box, t_box = p_box * mask, t_box * mask
        base_true, base_pred = {}, {}
        for r in rules.regions:
            in_region = np.zeros(256, bool)
            in_region[list(r.labels)] = True
            base_true[r.name] = _combined_by_dilation(in_region[t_box], r.dilation)
            base_pred[r.name] = _predicted(in_region[p_box], r, rules, sp[0] * sp[1] * sp[2])
        for r in (r for r in rules.regions if r.reported):
            t_les, p_les = base_true[r.name], base_pred[r.name]
            for partner in r.merge_with:
                t_les = _merge_touching(t_les, base_true[partner].lesion)
                p_les = _merge_touching(p_les, base_pred[partner].lesion)
            offsets = (len(lesions[r.name]), n_pred[r.name])
            found, unmatched = _score_lesions(
                t_les, p_les, sp, r.volume_threshold_mm3, penalty, offsets
            )
            lesions[r.name] += found
            fps[r.name] += unmatched
            n_pred[r.name] += p_les.count
    count_fp = rules.count_false_positives
    return {
        r.name: _aggregate(lesions[r.name], fps[r.name], float(penalty), count_fp)
        for r in rules.regions
        if r.reported
    }


def lesionwise_region(
    pred_mask: Any,
    true_mask: Any,
    *,
    spacing: Any,
    dilation: int,
    volume_threshold_mm3: float,
    hd95_penalty: float | str,
    count_false_positives: bool = True,
    prediction_filter: str = "none",
) -> LesionwiseResult:
    """Return the BraTS lesion-wise Dice and HD95 of one binary region.

    Args:
        pred_mask, true_mask: predicted and ground-truth masks of shape (H, W, D).
        spacing: voxel spacing along the three array axes, in mm.
        dilation: 3x3x3-cross dilations that merge lesions and make the match region (GLI: 3).
        volume_threshold_mm3: truth lesions of at most this volume are left out (GLI: 50).
        hd95_penalty: HD95 of a missed lesion and of a false positive (2023: 374 mm), or
            ``"diagonal"`` for the voxel-grid diagonal (MEN-RT 2024).
        count_false_positives: False leaves FPs out of the averages (MEN-RT 2024).
        prediction_filter: ``"none"`` (2023: every predicted component), or ``"voxels"`` /
            ``"mm3"`` (2024: combined by dilation, those of at most the threshold deleted).

    Returns:
        The :class:`LesionwiseResult`.

    Raises:
        ValueError: If the masks are not 3D of the same shape, or an argument is invalid.

    Examples:
        >>> import numpy as np
        >>> t = np.zeros((20, 20, 20), bool); t[2:7, 2:7, 2:7] = True  # 125 mm^3
        >>> p = t.copy(); p[15:17, 15:17, 15:17] = True  # + an 8-voxel false positive
        >>> r = lesionwise_region(p, t, spacing=(1, 1, 1), dilation=3,
        ...                       volume_threshold_mm3=50, hd95_penalty=374)
        >>> r.lesionwise_dice, r.lesionwise_hd95, (r.num_tp, r.num_fp, r.num_fn)
        (0.5, 187.0, (1, 1, 0))
    """
    if int(dilation) != dilation or dilation < 0:
        raise ValueError(f"dilation must be a non-negative integer, got {dilation!r}.")
    region = LesionwiseRegion("region", (1,), int(dilation), volume_threshold_mm3)
    rules = LesionwiseRules(
        "custom", 0, (region,), hd95_penalty, count_false_positives, prediction_filter
    )
    p, t = np.asarray(pred_mask).astype(bool), np.asarray(true_mask).astype(bool)
    return _evaluate(p, t, spacing, rules, "lesionwise_region")["region"]


def lesionwise_report(
    pred_labels: Any,
    true_labels: Any,
    *,
    spacing: Any,
    rules: LesionwiseRules | str,
    case_id: str | None = None,
) -> list[dict[str, Any]]:
    """Evaluate one case: the lesion-wise scores of every region of a challenge's rules.

    Args:
        pred_labels: predicted label map of shape (H, W, D).
        true_labels: ground-truth label map of shape (H, W, D), same grid.
        spacing: voxel spacing along the three array axes, in mm (the official scripts take
            the prediction's ``header.get_zooms()``).
        rules: a :class:`LesionwiseRules` or the name of a preset (``"BraTS-GLI"``).
        case_id: case identifier, copied into every row and used in error messages.

    Returns:
        One dict per reported region in the rules' order with keys ``case`` (if given),
        ``region`` (lower case), ``lesionwise_dice``, ``lesionwise_hd95``, ``num_tp``,
        ``num_fp``, ``num_fn``.

    Raises:
        ValueError: If the maps differ in shape, are not 3D, hold unknown or non-integer
            labels, or the spacing or rules name is invalid; the message names the case.

    Examples:
        >>> import numpy as np
        >>> y = np.zeros((24, 24, 24), np.uint8); y[4:12, 4:12, 4:12] = 2; y[6:10, 6:10, 6:10] = 3
        >>> rows = lesionwise_report(y, y, spacing=(1, 1, 1), rules="BraTS-GLI")
        >>> [(r["region"], r["lesionwise_dice"], r["num_tp"]) for r in rows]
        [('wt', 1.0, 1), ('tc', 1.0, 1), ('et', 1.0, 1)]
    """
    where = f"case {case_id!r}" if case_id is not None else "lesionwise_report"
    rules = lesionwise_preset(rules) if isinstance(rules, str) else rules
    results = _evaluate(np.asarray(pred_labels), np.asarray(true_labels), spacing, rules, where)
    keys = ("lesionwise_dice", "lesionwise_hd95", "num_tp", "num_fp", "num_fn")
    head = {"case": case_id} if case_id is not None else {}
    return [
        {**head, "region": name.lower(), **{k: getattr(res, k) for k in keys}}
        for name, res in results.items()
    ]

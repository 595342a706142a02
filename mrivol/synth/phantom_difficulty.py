"""How hard a BraTS-like data set is: the best Dice a single intensity threshold reaches.

If one modality thresholded at one value already segments a region, a network learns nothing
worth learning from it. For each BraTS region (WT = 1|2|4, TC = 1|4, ET = 4) and modality this
finds the best Dice of ``image > t`` or ``image < t`` inside the brain mask over *all*
thresholds at once, from cumulative histograms of the distinct intensities (no loop over
thresholds), pooled over the given cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from mrivol.data.layout import BRATS_MODALITIES

__all__ = ["REGIONS", "best_threshold_dice", "threshold_difficulty"]

#: BraTS evaluation regions as the label values they contain.
REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}


def _histograms(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (sorted) and each voxel's index into them."""
    return np.unique(values, return_inverse=True)


def best_threshold_dice(values: np.ndarray, positive: np.ndarray) -> tuple[float, str, float]:
    """Best Dice of ``values > t`` or ``values < t`` against ``positive`` over all thresholds.

    For the distinct values ``u_0 < ... < u_K`` with positive and total counts ``p_k``, ``n_k``
    and cumulative sums ``P_k``, ``N_k``: ``values > u_k`` has ``TP = P - P_k`` and
    ``|pred| = N - N_k``; ``values < u_k`` has ``TP = P_{k-1}`` and ``|pred| = N_{k-1}``;
    ``Dice = 2 TP / (|pred| + P)``.

    Args:
        values: intensities (N,).
        positive: boolean truth (N,).

    Returns:
        ``(dice, direction, threshold)`` with direction ``">"`` or ``"<"``; ``(0.0, ">", nan)``
        when there is no positive voxel.

    Raises:
        ValueError: if the two arrays differ in size or are empty.

    Examples:
        >>> best_threshold_dice(np.array([0, 1, 5, 6]), np.array([0, 0, 1, 1], bool))
        (1.0, '>', 1.0)
    """
    values = np.ravel(values)
    positive = np.ravel(positive).astype(bool)
    if values.size != positive.size or values.size == 0:
        raise ValueError(f"values ({values.size}) and positive ({positive.size}) must match, > 0")
    return _best_from_histogram(*_histograms(values), positive)


def _best_from_histogram(
    unique: np.ndarray, inverse: np.ndarray, positive: np.ndarray
) -> tuple[float, str, float]:
    """:func:`best_threshold_dice` given the distinct values and each voxel's index."""
    n_pos = int(positive.sum())
    if n_pos == 0:
        return 0.0, ">", float("nan")
    n_all = inverse.size
    pos_counts = np.bincount(inverse, weights=positive, minlength=unique.size)
    all_counts = np.bincount(inverse, minlength=unique.size).astype(np.float64)
    cum_pos = np.cumsum(pos_counts)
    cum_all = np.cumsum(all_counts)
    tp_gt = n_pos - cum_pos
    dice_gt = 2.0 * tp_gt / (n_all - cum_all + n_pos)
    tp_lt = cum_pos - pos_counts
    dice_lt = 2.0 * tp_lt / (cum_all - all_counts + n_pos)
    k_gt, k_lt = int(np.argmax(dice_gt)), int(np.argmax(dice_lt))
    if dice_gt[k_gt] >= dice_lt[k_lt]:
        return float(dice_gt[k_gt]), ">", float(unique[k_gt])
    return float(dice_lt[k_lt]), "<", float(unique[k_lt])


def _load(path: Path, case: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"case {case}: missing {path}; regenerate or remove the case")
    return np.asarray(nib.load(path).dataobj)


def threshold_difficulty(case_dirs: Sequence[Path]) -> pd.DataFrame:
    """Best single-modality threshold Dice per BraTS region, pooled over cases.

    Uses ``<case>_{t1,t1ce,t2,flair,seg}.nii.gz`` and ``truth/<case>_brainmask.nii.gz`` (the
    layout of :func:`~mrivol.synth.phantoms.generate_brats_phantoms`); voxels inside the brain
    mask or the tumour are counted.

    Args:
        case_dirs: case directories (the case name is the directory name).

    Returns:
        One row per region (WT, TC, ET) with columns ``region``, ``modality``, ``direction``,
        ``threshold``, ``dice`` (the best over modalities), ``dice_<modality>`` (the best per
        modality), ``n_voxels`` (region voxels) and ``n_cases``.

    Raises:
        ValueError: if ``case_dirs`` is empty.
        FileNotFoundError: if a file is missing (the message names the case and the file).

    Examples:
        >>> df = threshold_difficulty(sorted(Path("/data/phantoms").glob("phantom_*")))
        >>> df.set_index("region").loc["ET", "dice"]  # doctest: +SKIP
        0.62
    """
    if len(case_dirs) == 0:
        raise ValueError("threshold_difficulty needs at least one case directory")
    values: dict[str, list[np.ndarray]] = {m: [] for m in BRATS_MODALITIES}
    labels: list[np.ndarray] = []
    for case_dir in map(Path, case_dirs):
        case = case_dir.name
        seg = _load(case_dir / f"{case}_seg.nii.gz", case)
        mask = _load(case_dir / "truth" / f"{case}_brainmask.nii.gz", case) > 0
        mask |= seg > 0
        labels.append(seg[mask])
        for m in BRATS_MODALITIES:
            image = _load(case_dir / f"{case}_{m}.nii.gz", case)
            if image.shape != seg.shape:
                raise ValueError(f"case {case}: {m} shape {image.shape} != seg {seg.shape}")
            values[m].append(image[mask])
    label = np.concatenate(labels)
    rows = {region: {"region": region} for region in REGIONS}
    for m in BRATS_MODALITIES:
        pooled = np.concatenate(values[m])
        unique = _histograms(pooled)
        for region, codes in REGIONS.items():
            dice, direction, threshold = _best_from_histogram(*unique, np.isin(label, codes))
            row = rows[region]
            row[f"dice_{m}"] = dice
            if dice > row.get("dice", -1.0):
                row.update(modality=m, direction=direction, threshold=threshold, dice=dice)
    for region, codes in REGIONS.items():
        rows[region].update(n_voxels=int(np.isin(label, codes).sum()), n_cases=len(case_dirs))
    columns = ["region", "modality", "direction", "threshold", "dice"]
    columns += [f"dice_{m}" for m in BRATS_MODALITIES] + ["n_voxels", "n_cases"]
    return pd.DataFrame(list(rows.values()))[columns]

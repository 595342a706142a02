"""BraTS tumour sub-regions (ET, TC, WT) from label maps, for the 2021 and 2023 label conventions.

BraTS evaluates nested regions rather than the raw labels:

* **ET** enhancing tumour: label 4 (BraTS 2021) or 3 (BraTS 2023);
* **TC** tumour core: necrotic core (1) plus ET;
* **WT** whole tumour: TC plus peritumoral oedema (2).

References:
    Baid et al., "The RSNA-ASNR-MICCAI BraTS 2021 Benchmark on Brain Tumor Segmentation and
    Radiogenomic Classification", arXiv:2107.02314 (labels 1 NCR, 2 ED, 4 ET).
    BraTS 2023 evaluation code, github.com/rachitsaluja/BraTS-2023-Metrics,
    ``get_tissue_wise_mask`` (labels 1 NCR, 2 ED, 3 ET).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "BRATS2021_MAX_HD95",
    "BRATS2023_MAX_HD95",
    "BRATS_CONVENTIONS",
    "BRATS_REGIONS",
    "brats_region_masks",
    "default_max_hd95",
]

#: Region names in reporting order.
BRATS_REGIONS: tuple[str, ...] = ("ET", "TC", "WT")

#: Labels that make up each region, per convention.
BRATS_CONVENTIONS: dict[str, dict[str, tuple[int, ...]]] = {
    "brats2021": {"ET": (4,), "TC": (1, 4), "WT": (1, 2, 4)},
    "brats2023": {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3)},
}

#: HD95 (mm) assigned when exactly one of prediction / truth is empty, BraTS 2021 and CaPTk-style
#: tooling: the diagonal of the 240 x 240 x 155 BraTS grid at 1 mm,
#: ``sqrt(240**2 + 240**2 + 155**2) = 373.1287``.
BRATS2021_MAX_HD95: float = 373.1287

#: HD95 (mm) that the BraTS 2023 evaluation code writes in place of ``inf``
#: (``results_df.replace(np.inf, 374)`` in ``brats_metrics.py`` of BraTS-2023-Metrics).
BRATS2023_MAX_HD95: float = 374.0

_MAX_HD95 = {"brats2021": BRATS2021_MAX_HD95, "brats2023": BRATS2023_MAX_HD95}


def _check_convention(labels: str) -> dict[str, tuple[int, ...]]:
    try:
        return BRATS_CONVENTIONS[labels]
    except KeyError:
        raise ValueError(
            f"Unknown BraTS label convention {labels!r}; use one of {sorted(BRATS_CONVENTIONS)}."
        ) from None


def default_max_hd95(labels: str = "brats2021") -> float:
    """Return the HD95 (mm) that a convention assigns when exactly one mask is empty.

    Args:
        labels: ``"brats2021"`` (373.1287 mm) or ``"brats2023"`` (374 mm).

    Returns:
        The maximum HD95 in millimetres.

    Raises:
        ValueError: If ``labels`` is not a known convention.

    Examples:
        >>> default_max_hd95("brats2023")
        374.0
    """
    _check_convention(labels)
    return _MAX_HD95[labels]


def brats_region_masks(
    label_map: Any, *, labels: str = "brats2021", name: str = "label map"
) -> dict[str, np.ndarray]:
    """Split a BraTS label map into the binary ET, TC and WT masks.

    Args:
        label_map: integer label map of shape (H, W, D) (numpy array, torch tensor or anything
            ``np.asarray`` accepts; float maps with integral values are accepted).
        labels: label convention, ``"brats2021"`` (1 NCR, 2 ED, 4 ET) or ``"brats2023"``
            (1 NCR, 2 ED, 3 ET).
        name: how to call the map in error messages (e.g. the case id and file).

    Returns:
        ``{"ET": mask, "TC": mask, "WT": mask}``, boolean arrays of shape (H, W, D).

    Raises:
        ValueError: If the convention is unknown, the map is not 3D, holds non-integral
            values, or holds labels that the convention does not define (a sign of the
            wrong convention).

    Examples:
        >>> import numpy as np
        >>> masks = brats_region_masks(np.array([0, 1, 2, 4]).reshape(1, 1, 4))
        >>> [int(masks[r].sum()) for r in ("ET", "TC", "WT")]
        [1, 2, 3]
    """
    regions = _check_convention(labels)
    arr = np.asarray(label_map)
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a 3D label map (H, W, D), got shape {arr.shape}.")
    is_discrete = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)
    if not is_discrete and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        raise ValueError(
            f"{name}: label map holds non-integer values; pass a discrete label map "
            "(argmax / thresholded prediction), not probabilities."
        )
    arr = arr.astype(np.int64)
    allowed = {0, *regions["WT"]}
    found = set(np.unique(arr).tolist())
    unknown = found - allowed
    if unknown:
        other = [
            k for k, v in BRATS_CONVENTIONS.items() if k != labels and unknown <= {0, *v["WT"]}
        ]
        hint = f" Did you mean labels={other[0]!r}?" if other else ""
        raise ValueError(
            f"{name}: labels {sorted(unknown)} are not part of the {labels} convention "
            f"(allowed {sorted(allowed)}).{hint}"
        )
    return {region: np.isin(arr, regions[region]) for region in BRATS_REGIONS}

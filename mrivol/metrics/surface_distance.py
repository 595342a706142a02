"""Area-weighted surface distances and robust Hausdorff distance (DeepMind ``surface-distance``).

This is a numpy/scipy re-implementation of ``compute_surface_distances`` and
``compute_robust_hausdorff`` from DeepMind's surface-distance package
(github.com/deepmind/surface-distance, ``surface_distance/metrics.py``, PyPI
``surface-distance==0.1``, Apache-2.0), which the official BraTS 2023 evaluation
(github.com/rachitsaluja/BraTS-2023-Metrics) uses for HD95. It is written here because the
package still uses ``np.Inf`` (removed in NumPy 2) and so cannot be a runtime dependency.

The method (Nikolov et al., "Clinically Applicable Segmentation of Head and Neck Anatomy for
Radiotherapy", JMIR 2021): surface elements ("surfels") are placed on the corners of the voxel
grid by marching cubes; each surfel is weighted by its area (in mm^2, from the neighbour-code
table of marching-cubes normals, scaled by the voxel spacing); the distance from every surfel
of one mask to the closest surfel of the other is exact Euclidean (DeepMind reads it from a
distance transform, here a KD-tree query over the surfels gives the same values faster); the
robust Hausdorff distance is the area-weighted ``percent`` percentile of *each* directed
distance set, and the maximum of the two. This differs from MONAI's ``HausdorffDistanceMetric``
(voxel edges, unweighted) and from medpy's ``hd95`` (pooled percentile of both directions).

The neighbour-code-to-normals table is MONAI's copy of DeepMind's table
(``monai.metrics.utils``); areas are computed in float64 exactly as DeepMind does, and
``tests/metrics`` checks both the table and the results against the package.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from monai.metrics.utils import ENCODING_KERNEL, _get_neighbour_code_to_normals_table
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = [
    "check_spacing",
    "SurfaceDistances",
    "compute_robust_hausdorff",
    "compute_surface_distances",
    "neighbour_code_to_surface_area",
]

_FULL_NEIGHBOURHOOD = 0b11111111


class SurfaceDistances(NamedTuple):
    """Directed surface distances (mm) and surfel areas (mm^2), each sorted by distance.

    Attributes:
        distances_gt_to_pred: distance from each ground-truth surfel to the predicted surface.
        distances_pred_to_gt: distance from each predicted surfel to the ground-truth surface.
        surfel_areas_gt: area of each ground-truth surfel, same order as its distances.
        surfel_areas_pred: area of each predicted surfel, same order as its distances.
    """

    distances_gt_to_pred: np.ndarray
    distances_pred_to_gt: np.ndarray
    surfel_areas_gt: np.ndarray
    surfel_areas_pred: np.ndarray


# above this many surfels in total, the distance transform is faster than the k-d tree
_KDTREE_MAX_POINTS = 60_000


@lru_cache(maxsize=32)
def _area_table(spacing_mm: tuple[float, float, float]) -> np.ndarray:
    normals = _get_neighbour_code_to_normals_table().cpu().numpy().astype(np.float64)
    s0, s1, s2 = spacing_mm
    table = np.zeros(256, dtype=np.float64)
    for code in range(256):
        area = 0.0
        for nx, ny, nz in normals[code]:
            # Same operation order as DeepMind, so areas agree to the last bit.
            n = np.array([nx * s1 * s2, ny * s0 * s2, nz * s0 * s1])
            area += float(np.linalg.norm(n))
        table[code] = area
    table.setflags(write=False)
    return table


def neighbour_code_to_surface_area(spacing_mm: Any) -> np.ndarray:
    """Return the surfel area (mm^2) of each of the 256 2x2x2 neighbour codes.

    Follows ``create_table_neighbour_code_to_surface_area`` of DeepMind's surface-distance.

    Args:
        spacing_mm: voxel spacing along the three array axes, in mm.

    Returns:
        Read-only float64 array of shape (256,).

    Examples:
        >>> float(neighbour_code_to_surface_area((1.0, 1.0, 1.0))[0b00001111])
        1.0
    """
    return _area_table(check_spacing(spacing_mm))


def check_spacing(spacing_mm: Any, *, where: str = "spacing_mm") -> tuple[float, float, float]:
    """``spacing_mm`` as three positive floats (mm).

    Raises:
        ValueError: not three finite positive numbers; the message starts with ``where``.
    """
    spacing = tuple(float(s) for s in np.ravel(np.asarray(spacing_mm, dtype=np.float64)))
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(
            f"{where}: spacing must be three positive numbers (mm), got {spacing_mm!r}."
        )
    return spacing  # type: ignore[return-value]


def _sorted(distances: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # DeepMind sorts (distance, area) tuples: distance first, area breaks ties.
    order = np.lexsort((areas, distances))
    return distances[order], areas[order]


def compute_surface_distances(mask_gt: Any, mask_pred: Any, spacing_mm: Any) -> SurfaceDistances:
    """Compute area-weighted directed surface distances between two 3D binary masks.

    Same results as DeepMind's ``compute_surface_distances`` (3D case): if one mask is empty,
    its lists are empty and every distance of the other mask is ``inf``; if both are empty all
    four arrays are empty.

    Args:
        mask_gt: ground-truth mask of shape (H, W, D), bool or 0/1.
        mask_pred: predicted mask of shape (H, W, D), bool or 0/1.
        spacing_mm: voxel spacing along the three array axes, in mm.

    Returns:
        The sorted distances and surfel areas as :class:`SurfaceDistances`.

    Raises:
        ValueError: If the masks are not 3D, differ in shape, or the spacing is invalid.

    Examples:
        >>> import numpy as np
        >>> a = np.zeros((8, 8, 8), bool); a[2:5, 2:5, 2:5] = True
        >>> b = np.roll(a, 1, axis=0)
        >>> sd = compute_surface_distances(a, b, (1.0, 1.0, 1.0))
        >>> float(sd.distances_gt_to_pred.max())
        1.0
    """
    gt = np.asarray(mask_gt).astype(bool)
    pred = np.asarray(mask_pred).astype(bool)
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise ValueError(
            f"Masks must be 3D with the same shape, got {gt.shape} (truth) and "
            f"{pred.shape} (prediction)."
        )
    spacing = check_spacing(spacing_mm)
    empty = np.array([], dtype=np.float64)
    union = gt | pred
    if not union.any():
        return SurfaceDistances(empty, empty, empty, empty)

    # Crop to the bounding box plus one zero voxel at the upper end, as DeepMind does: the
    # correlation with the 2x2x2 kernel then yields the code of every voxel corner.
    bbox = ndimage.find_objects(union.astype(np.uint8))[0]
    kernel = np.asarray(ENCODING_KERNEL[3], dtype=np.uint8)
    area_table = _area_table(spacing)

    borders, points, surfel_areas = [], [], []
    for mask in (gt, pred):
        crop = np.pad(mask[bbox].astype(np.uint8), [(0, 1)] * 3)
        code = ndimage.correlate(crop, kernel, mode="constant", cval=0)
        border = (code != 0) & (code != _FULL_NEIGHBOURHOOD)
        borders.append(border)
        points.append(np.argwhere(border))  # C order, as DeepMind's boolean indexing
        surfel_areas.append(area_table[code[border]])

    sampling = np.asarray(spacing, dtype=np.float64)
    if len(points[0]) + len(points[1]) > _KDTREE_MAX_POINTS:  # ragged masks: DeepMind's EDT
        d_gt_pred = _edt_distances(borders[0], borders[1], sampling)
        d_pred_gt = _edt_distances(borders[1], borders[0], sampling)
    else:
        d_gt_pred = _nearest_distances(points[0], points[1], sampling)
        d_pred_gt = _nearest_distances(points[1], points[0], sampling)
    d_gt_pred, a_gt = _sorted(d_gt_pred, surfel_areas[0])
    d_pred_gt, a_pred = _sorted(d_pred_gt, surfel_areas[1])
    return SurfaceDistances(d_gt_pred, d_pred_gt, a_gt, a_pred)


def _edt_distances(src: np.ndarray, dst: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """DeepMind's own way: the Euclidean distance transform of ``~dst`` read at ``src``.

    Linear in the number of voxels, so it wins over the k-d tree when the surfaces are large
    and ragged (an untrained network's noisy prediction: ~1e6 surfels, 100x slower by k-d tree).
    """
    if not src.any():
        return np.array([], dtype=np.float64)
    if not dst.any():
        return np.full(int(src.sum()), np.inf)
    return ndimage.distance_transform_edt(~dst, sampling=sampling)[src]


def _nearest_distances(src: np.ndarray, dst: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """Distance (mm) from each grid point of ``src`` (N, 3) to the closest point of ``dst``.

    DeepMind reads these from ``scipy.ndimage.distance_transform_edt`` over the whole cropped
    volume. An exact nearest-neighbour query over the surfel positions finds the same closest
    points several times faster on BraTS-sized volumes; the distance is then evaluated with
    the same float operations as scipy's EDT (index difference times spacing, squared,
    summed over axes, square root). Values agree to the last bit except where two closest
    points lie at the same real distance along different axes (anisotropic spacing, e.g.
    3 x 0.8 mm and 2 x 1.2 mm), where they can differ by one rounding step (~1e-16 mm).
    """
    if len(src) == 0:
        return np.array([], dtype=np.float64)
    if len(dst) == 0:
        return np.full(len(src), np.inf)
    _, nearest = cKDTree(dst * sampling).query(src * sampling, k=1)
    delta = (dst[nearest] - src).T.astype(np.float64)  # (3, N), as scipy's ``ft - indices``
    delta *= sampling[:, None]
    np.multiply(delta, delta, delta)
    return np.sqrt(np.add.reduce(delta, axis=0))


def _directed_percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    if len(distances) == 0:
        return float("inf")
    cumulative = np.cumsum(areas) / np.sum(areas)
    idx = int(np.searchsorted(cumulative, percent / 100.0))
    return float(distances[min(idx, len(distances) - 1)])


def compute_robust_hausdorff(surface_distances: SurfaceDistances, percent: float = 95.0) -> float:
    """Return the robust (percentile) Hausdorff distance in mm.

    Same as DeepMind's ``compute_robust_hausdorff``: the area-weighted ``percent`` percentile
    of each directed distance set (the first surfel whose cumulative area fraction reaches
    ``percent / 100``), then the maximum of the two. An empty direction counts as ``inf``, so
    the result is ``inf`` when either mask is empty (BraTS replaces it with a maximum; see
    :func:`mrivol.metrics.segmentation.hd95_mm`).

    Args:
        surface_distances: output of :func:`compute_surface_distances`.
        percent: percentile in [0, 100]; 95 gives HD95, 100 the Hausdorff distance.

    Returns:
        The robust Hausdorff distance in mm (``inf`` if a mask is empty).

    Raises:
        ValueError: If ``percent`` is outside [0, 100].

    Examples:
        >>> import numpy as np
        >>> a = np.zeros((8, 8, 8), bool); a[2:5, 2:5, 2:5] = True
        >>> sd = compute_surface_distances(a, np.roll(a, 2, axis=1), (1.0, 1.0, 1.0))
        >>> compute_robust_hausdorff(sd, 95)
        2.0
    """
    if not 0.0 <= percent <= 100.0:
        raise ValueError(f"percent must be in [0, 100], got {percent}.")
    return max(
        _directed_percentile(
            surface_distances.distances_gt_to_pred, surface_distances.surfel_areas_gt, percent
        ),
        _directed_percentile(
            surface_distances.distances_pred_to_gt, surface_distances.surfel_areas_pred, percent
        ),
    )

"""MNI152 tissue maps and a smooth full-head tissue model built from them.

The MNI152 2009c template that nilearn ships offline (T1 brain only, GM and WM probability maps,
brain mask) is the anatomy of every synthetic phantom in mrivol. This module loads it once per
process (cached) and adds what the template lacks for skull stripping to be meaningful: an
extra-cerebral CSF shell, the skull and the scalp, as layers of a smoothed signed distance to the
brain surface whose thickness varies smoothly over the head.

The two parts are separate on purpose: :func:`load_mni_tissue_maps` gives the brain tissue
probabilities (which an atrophy model may shrink or a tumour model may push aside), and
:func:`head_fractions` / :func:`tissue_fractions` turn any such maps plus the cached head
distance into partial-volume fractions on any grid (MNI or resampled).

References:
    Fonov et al., NeuroImage 54 (2011); the ICBM 2009c nonlinear symmetric template.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "HEAD_CLASSES",
    "HeadLayers",
    "HeadModel",
    "TissueMaps",
    "grid_world_axes",
    "head_fractions",
    "load_head_model",
    "load_mni_tissue_maps",
    "tissue_fraction_maps",
    "tissue_fractions",
]

#: Channel order of :func:`tissue_fractions` (and the tissue truth labels 0..5 of the phantoms).
HEAD_CLASSES: tuple[str, ...] = ("background", "csf", "gm", "wm", "skull", "scalp")

#: Slices of neck (brainstem continued by edge replication) added below the MNI grid, in mm.
_NECK_MM = 30.0


@dataclass(frozen=True)
class TissueMaps:
    """Brain tissue probability maps on one (padded) MNI152 grid.

    Attributes:
        gm: grey-matter probability, float32 (X, Y, Z), read-only.
        wm: white-matter probability, float32 (X, Y, Z), read-only; ``gm + wm <= 1``.
        brain_mask: brain mask (bool, X, Y, Z), read-only.
        t1: the template T1 intensity in [0, 1] (brain only), float32, read-only.
        affine: voxel-to-MNI-world (mm, RAS) 4x4 matrix.
        resolution: voxel size in mm (1 or 2).
    """

    gm: np.ndarray
    wm: np.ndarray
    brain_mask: np.ndarray
    t1: np.ndarray
    affine: np.ndarray
    resolution: int

    @property
    def csf(self) -> np.ndarray:
        """Intracerebral CSF probability: ``brain_mask - gm - wm`` clipped to [0, 1]."""
        return np.clip(self.brain_mask.astype(np.float32) - self.gm - self.wm, 0.0, 1.0)


@dataclass(frozen=True)
class HeadLayers:
    """Mean thickness (mm) of the layers outside the brain mask, innermost first.

    Attributes:
        csf_mm: extra-cerebral CSF (subarachnoid space and meninges).
        skull_mm: skull (inner table, diploe, outer table).
        scalp_mm: scalp (subcutaneous fat, muscle, skin).
    """

    csf_mm: float = 2.0
    skull_mm: float = 6.5
    scalp_mm: float = 6.0

    def __post_init__(self) -> None:
        for name in ("csf_mm", "skull_mm", "scalp_mm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"HeadLayers.{name} must be > 0, got {getattr(self, name)}")

    @property
    def boundaries(self) -> tuple[float, float, float]:
        """Outer boundary of the CSF, skull and scalp layers (mm from the brain surface)."""
        b1 = self.csf_mm
        b2 = b1 + self.skull_mm
        return b1, b2, b2 + self.scalp_mm


@dataclass(frozen=True)
class HeadModel:
    """The MNI tissue maps plus a smooth distance field that places the head layers.

    Attributes:
        tissues: the brain tissue maps.
        distance: float32 (X, Y, Z) smoothed signed distance to the brain surface in mm
            (negative inside the brain). Outside the brain it is divided by a smooth thickness
            factor (``1 +- thickness_variation``), so that fixed layer boundaries
            (:class:`HeadLayers`) give a skull and scalp whose thickness varies over the head.
        head_bbox: (lo, hi) voxel bounds (inclusive, exclusive) of ``distance < 25`` mm.
        brain_bbox: (lo, hi) voxel bounds of ``distance < 2`` mm (the brain and a margin).
    """

    tissues: TissueMaps
    distance: np.ndarray
    head_bbox: tuple[tuple[int, int, int], tuple[int, int, int]]
    brain_bbox: tuple[tuple[int, int, int], tuple[int, int, int]]


def grid_world_axes(
    affine: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y, z (mm) of an axis-aligned grid as broadcastable 1D arrays (``np.ogrid`` style).

    Args:
        affine: voxel-to-world 4x4 matrix with a diagonal 3x3 part (like the MNI grids).
        shape: grid shape (X, Y, Z).

    Returns:
        Float32 arrays shaped (X, 1, 1), (1, Y, 1) and (1, 1, Z).

    Raises:
        ValueError: if the affine is rotated or sheared.

    Examples:
        >>> x, y, z = grid_world_axes(np.diag([2.0, 2.0, 2.0, 1.0]), (3, 4, 5))
        >>> x.ravel().tolist(), z.shape
        ([0.0, 2.0, 4.0], (1, 1, 5))
    """
    affine = np.asarray(affine, dtype=np.float64)
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))):
        raise ValueError(f"expected an axis-aligned (diagonal) affine, got\n{affine}")
    i, j, k = np.ogrid[: shape[0], : shape[1], : shape[2]]
    x, y, z = (
        (affine[a, a] * idx + affine[a, 3]).astype(np.float32) for a, idx in enumerate((i, j, k))
    )
    return x, y, z


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=2)
def load_mni_tissue_maps(*, resolution: int = 1) -> TissueMaps:
    """Load the MNI152 2009c maps that nilearn ships (no download), cached per process.

    The grid (197x233x189 at 1 mm) is extended by 30 mm at the bottom by replicating the
    lowest slice, so that the brainstem continues into a neck instead of ending at the edge.

    Args:
        resolution: voxel size in mm, 1 or 2 (nilearn resamples the 1 mm maps for 2).

    Returns:
        The read-only :class:`TissueMaps`.

    Raises:
        ValueError: if ``resolution`` is not 1 or 2.

    Examples:
        >>> maps = load_mni_tissue_maps(resolution=2)
        >>> maps.gm.shape
        (99, 117, 110)
    """
    if resolution not in (1, 2):
        raise ValueError(f"MNI resolution must be 1 or 2 mm, got {resolution!r}")
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=resolution)
    gm = datasets.load_mni152_gm_template(resolution=resolution).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=resolution).get_fdata(dtype=np.float32)
    mask = datasets.load_mni152_brain_mask(resolution=resolution).get_fdata() > 0.5
    t1 = t1_img.get_fdata(dtype=np.float32)

    neck = int(round(_NECK_MM / resolution))
    pad = ((0, 0), (0, 0), (neck, 0))
    gm, wm, t1 = (np.pad(np.clip(a, 0, 1), pad, mode="edge") for a in (gm, wm, t1))
    mask = np.pad(mask, pad, mode="edge")
    gm *= mask
    wm *= mask
    excess = np.maximum(gm + wm, 1.0)  # keep gm + wm <= 1
    gm /= excess
    wm /= excess
    affine = t1_img.affine.copy()
    affine[:3, 3] -= affine[:3, 2] * neck
    return TissueMaps(
        gm=_readonly(gm.astype(np.float32)),
        wm=_readonly(wm.astype(np.float32)),
        brain_mask=_readonly(mask),
        t1=_readonly(t1.astype(np.float32)),
        affine=_readonly(affine),
        resolution=resolution,
    )


def _smooth_noise(shape: tuple[int, ...], *, rng: np.random.Generator, coarse: int) -> np.ndarray:
    """Unit-std smooth random field: noise on a ``coarse`` times coarser grid, upsampled."""
    small = tuple(max(2, s // coarse) for s in shape)
    field = ndi.gaussian_filter(rng.standard_normal(small).astype(np.float32), 1.0)
    field = ndi.zoom(field, [s / c for s, c in zip(shape, small, strict=True)], order=1)
    field = field[tuple(slice(0, s) for s in shape)]
    return (field - field.mean()) / (field.std() + 1e-6)


@functools.lru_cache(maxsize=2)
def load_head_model(
    *, resolution: int = 1, thickness_variation: float = 0.25, seed: int = 0
) -> HeadModel:
    """Build (once per process) the smooth head distance field around the MNI brain mask.

    The signed Euclidean distance to the brain mask (``scipy.ndimage.distance_transform_edt``
    both ways, half-voxel corrected) is smoothed with a 1 mm Gaussian so that the layers are
    smooth rather than blocky, and its outside part is divided by a smooth random thickness
    factor (fixed ``seed``: it is anatomy, shared by all phantoms).

    Args:
        resolution: MNI voxel size in mm, 1 or 2.
        thickness_variation: relative variation of the layer thickness over the head (0..0.5).
        seed: seed of the thickness field.

    Returns:
        The read-only :class:`HeadModel`.

    Raises:
        ValueError: if ``thickness_variation`` is outside [0, 0.5].

    Examples:
        >>> head = load_head_model(resolution=2)
        >>> bool(head.distance[head.tissues.brain_mask].max() <= 0.5)
        True
    """
    if not 0.0 <= thickness_variation <= 0.5:
        raise ValueError(f"thickness_variation must be in [0, 0.5], got {thickness_variation}")
    tissues = load_mni_tissue_maps(resolution=resolution)
    mask = tissues.brain_mask
    r = float(tissues.resolution)
    outside = ndi.distance_transform_edt(~mask, sampling=r).astype(np.float32)
    inside = ndi.distance_transform_edt(mask, sampling=r).astype(np.float32)
    distance = np.where(mask, -inside + 0.5 * r, outside - 0.5 * r)
    distance = ndi.gaussian_filter(distance, 1.0 / r)
    rng = np.random.default_rng(seed)
    factor = 1.0 + thickness_variation * np.tanh(
        _smooth_noise(mask.shape, rng=rng, coarse=max(2, int(16 / r)))
    )
    distance = np.where(distance > 0, distance / factor, distance).astype(np.float32)

    def bbox(below_mm: float) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        idx = np.argwhere(distance < below_mm)
        return tuple(int(i) for i in idx.min(0)), tuple(int(i) + 1 for i in idx.max(0))

    return HeadModel(
        tissues=tissues,
        distance=_readonly(distance),
        head_bbox=bbox(25.0),
        brain_bbox=bbox(2.0),
    )


def head_fractions(
    distance: np.ndarray, *, layers: HeadLayers = HeadLayers(), ramp_mm: float = 1.0
) -> dict[str, np.ndarray]:
    """Partial-volume fractions of brain, CSF shell, skull, scalp and air from a head distance.

    Each boundary is a linear ramp ``ramp_mm`` wide (use about the voxel size of the grid the
    distance was sampled on), so the fractions sum to one and the layers are smooth.

    Args:
        distance: signed head distance (mm, negative inside the brain), e.g.
            :attr:`HeadModel.distance` or a resampled copy of it, any shape.
        layers: layer thicknesses.
        ramp_mm: width of the partial-volume ramp at each boundary (> 0).

    Returns:
        Float32 arrays shaped like ``distance`` for keys ``brain``, ``csf_shell``, ``skull``,
        ``scalp`` and ``background``.

    Raises:
        ValueError: if ``ramp_mm`` is not positive.

    Examples:
        >>> f = head_fractions(np.array([-5.0, 1.0, 5.0, 12.0, 30.0]), layers=HeadLayers())
        >>> [k for k in f if f[k][2] == 1.0]
        ['skull']
    """
    if ramp_mm <= 0:
        raise ValueError(f"ramp_mm must be > 0, got {ramp_mm}")
    d = np.asarray(distance, dtype=np.float32)

    def inside(boundary: float) -> np.ndarray:
        out = np.float32(boundary / ramp_mm + 0.5) - d * np.float32(1.0 / ramp_mm)
        return np.clip(out, 0.0, 1.0, out=out)

    b1, b2, b3 = layers.boundaries
    brain, in1, in2, in3 = inside(0.0), inside(b1), inside(b2), inside(b3)
    background = np.float32(1.0) - in3
    in3 -= in2
    in2 -= in1
    in1 -= brain
    return {"brain": brain, "csf_shell": in1, "skull": in2, "scalp": in3, "background": background}


def tissue_fraction_maps(
    gm: np.ndarray,
    wm: np.ndarray,
    distance: np.ndarray,
    *,
    layers: HeadLayers = HeadLayers(),
    ramp_mm: float = 1.0,
) -> dict[str, np.ndarray]:
    """Full-head partial-volume fractions, one map per class of :data:`HEAD_CLASSES`.

    Grey and white matter are limited to the brain fraction given by ``distance``; the CSF
    map is the intracerebral CSF (brain minus GM and WM) plus the extra-cerebral shell.

    Args:
        gm: grey-matter probability (X, Y, Z), e.g. :attr:`TissueMaps.gm` or an atrophied copy.
        wm: white-matter probability (X, Y, Z).
        distance: signed head distance on the same grid (see :class:`HeadModel`).
        layers: layer thicknesses.
        ramp_mm: partial-volume ramp width in mm.

    Returns:
        ``{class: float32 map}`` in the order of :data:`HEAD_CLASSES`; the maps sum to one.

    Raises:
        ValueError: if the three maps do not have the same shape.

    Examples:
        >>> head = load_head_model(resolution=2)
        >>> f = tissue_fraction_maps(head.tissues.gm, head.tissues.wm, head.distance)
        >>> list(f) == list(HEAD_CLASSES)
        True
    """
    if not (gm.shape == wm.shape == distance.shape):
        raise ValueError(
            f"gm {gm.shape}, wm {wm.shape} and distance {distance.shape} must share one grid"
        )
    shells = head_fractions(distance, layers=layers, ramp_mm=ramp_mm)
    brain = shells["brain"]
    gm = np.clip(gm, 0.0, 1.0, dtype=np.float32)
    wm = np.clip(wm, 0.0, 1.0, dtype=np.float32)
    total = np.maximum(gm + wm, np.float32(1e-6))
    scale = np.minimum(np.float32(1.0), brain / total, out=total)
    gm *= scale
    wm *= scale
    csf = brain - gm
    csf -= wm
    csf += shells["csf_shell"]
    return {
        "background": shells["background"],
        "csf": csf,
        "gm": gm,
        "wm": wm,
        "skull": shells["skull"],
        "scalp": shells["scalp"],
    }


def tissue_fractions(
    gm: np.ndarray,
    wm: np.ndarray,
    distance: np.ndarray,
    *,
    layers: HeadLayers = HeadLayers(),
    ramp_mm: float = 1.0,
) -> np.ndarray:
    """:func:`tissue_fraction_maps` stacked into one float32 array (6, X, Y, Z).

    Args:
        gm: grey-matter probability (X, Y, Z).
        wm: white-matter probability (X, Y, Z).
        distance: signed head distance on the same grid (see :class:`HeadModel`).
        layers: layer thicknesses.
        ramp_mm: partial-volume ramp width in mm.

    Returns:
        Float32 array (6, X, Y, Z) in the order of :data:`HEAD_CLASSES`, summing to one.

    Raises:
        ValueError: if the three maps do not have the same shape.

    Examples:
        >>> head = load_head_model(resolution=2)
        >>> t = head.tissues
        >>> f = tissue_fractions(t.gm, t.wm, head.distance, ramp_mm=2.0)
        >>> bool(np.allclose(f.sum(0), 1.0, atol=1e-5))
        True
    """
    maps = tissue_fraction_maps(gm, wm, distance, layers=layers, ramp_mm=ramp_mm)
    return np.stack(list(maps.values()))

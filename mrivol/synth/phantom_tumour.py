"""Irregular, layered glioma-like tumours with mass effect, placed in MNI space.

A tumour is drawn in a crop of the MNI head grid around a white-matter centre in one hemisphere:

1. mass effect: grey and white matter are pushed away from the centre by a smooth radial
   displacement that fades with distance and towards the brain surface (the brain outline
   stays where the skull is);
2. tumour core (TC = necrosis + enhancing): the ``N`` highest voxels of a multi-lobed field
   (the maximum of a few random ellipsoid bumps plus smooth noise), ``N`` set by the drawn
   volume, so the volume is exact whatever the shape;
3. enhancing tumour (ET): a rim of random, locally varying thickness inside the core boundary;
   the necrotic core (NET) is the rest;
4. oedema: the ``M`` highest voxels of ``exp(-distance to core / length) x (WM + 0.15 GM)``
   with smooth noise, so it spreads preferentially along white matter and avoids CSF.

References:
    Prastawa et al., "Simulation of brain tumors in MR images for evaluation of segmentation
    efficacy", Medical Image Analysis 13 (2009) (layered tumour, oedema along white matter,
    mass effect); the BraTS label convention (1 NET, 2 oedema, 4 ET).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from mrivol.synth.mni import HeadModel, grid_world_axes

__all__ = ["Tumour", "make_tumour"]


@dataclass
class Tumour:
    """One tumour in a crop of the MNI head grid.

    Attributes:
        crop: voxel slices of the crop in the MNI head grid.
        gm: grey matter in the crop after the mass effect, float32.
        wm: white matter in the crop after the mass effect, float32.
        labels: BraTS labels in the crop (uint8: 0, 1 NET, 2 oedema, 4 ET).
        soft: float32 (4, ...) partial-volume maps: whole tumour, tumour core, necrosis (nested:
            ``wt >= tc >= net``) and a unit-std smooth texture for intensity heterogeneity.
        params: the drawn parameters (JSON-serialisable).
    """

    crop: tuple[slice, slice, slice]
    gm: np.ndarray
    wm: np.ndarray
    labels: np.ndarray
    soft: np.ndarray
    params: dict = field(default_factory=dict)


def _smooth_noise(shape: tuple[int, ...], sigma_vox: float, rng: np.random.Generator) -> np.ndarray:
    noise = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_vox)
    return noise / (noise.std() + 1e-6)


def _top_n(score: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of the ``n`` highest ``score`` voxels among ``allowed`` ones."""
    values = score[allowed]
    n = int(min(max(n, 1), values.size))
    threshold = np.partition(values, values.size - n)[values.size - n]
    return allowed & (score >= threshold)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndi.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _pick_centre(
    head: HeadModel, *, rng: np.random.Generator, hemisphere: int, radius_mm: float
) -> np.ndarray:
    """A random voxel in deep white matter of one supratentorial hemisphere (voxel index)."""
    t = head.tissues
    x, _, z = grid_world_axes(t.affine, t.gm.shape)
    side = (hemisphere * x > 12.0) & (z > -20.0)
    for margin in (radius_mm + 10.0, radius_mm, 0.5 * radius_mm, 0.0):
        candidates = np.argwhere((t.wm > 0.85) & (head.distance < -margin) & side)
        if len(candidates):
            return candidates[rng.integers(len(candidates))].astype(np.float64)
    raise RuntimeError("no white-matter voxel found in the MNI maps: are they corrupted?")


def make_tumour(
    head: HeadModel,
    *,
    rng: np.random.Generator,
    blur_mm: float = 0.6,
    wt_ml: tuple[float, float] = (20.0, 120.0),
    min_rim_mm: float = 2.0,
) -> Tumour:
    """Draw one tumour, with mass effect, in the MNI space of ``head``.

    Args:
        head: the cached head model (its maps are not modified).
        rng: the case's random generator.
        blur_mm: Gaussian sigma of the partial-volume maps (about 0.4 x output voxel size).
        wt_ml: range of the whole-tumour volume in ml (drawn log-uniformly).
        min_rim_mm: minimum mean thickness of the enhancing rim (use >= the output voxel size
            so that the rim survives resampling).

    Returns:
        The :class:`Tumour`; every label 1, 2, 4 is present in ``labels``.

    Examples:
        >>> from mrivol.synth.mni import load_head_model
        >>> tum = make_tumour(load_head_model(resolution=2), rng=np.random.default_rng(0))
        >>> sorted(np.unique(tum.labels).tolist())
        [0, 1, 2, 4]
    """
    t = head.tissues
    r = float(t.resolution)
    ml_vox = 1000.0 / r**3
    hemisphere = int(rng.choice([-1, 1]))
    wt_volume = float(np.exp(rng.uniform(np.log(wt_ml[0]), np.log(wt_ml[1]))))
    tc_volume = wt_volume * rng.uniform(0.25, 0.55)
    r_wt = (3.0 * wt_volume * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    r_tc = (3.0 * tc_volume * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    rim_mm = max(min_rim_mm, rng.uniform(2.0, 4.5))
    oedema_length = rng.uniform(4.0, 12.0)
    push = rng.uniform(0.15, 0.35)
    push_length = r_wt * rng.uniform(0.8, 1.1)

    centre = _pick_centre(head, rng=rng, hemisphere=hemisphere, radius_mm=r_tc)
    half = int(np.ceil(max(2.0 * push_length, 1.3 * r_wt + 15.0) / r))
    lo = np.maximum(centre.astype(int) - half, 0)
    hi = np.minimum(centre.astype(int) + half + 1, t.gm.shape)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
    c = centre - lo
    rel = np.ogrid[: shape[0], : shape[1], : shape[2]]
    rel = [((g - ci) * r).astype(np.float32) for g, ci in zip(rel, c, strict=True)]
    dist = np.sqrt(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2)

    # 1. mass effect: sample the maps at centre + rel * (1 - push * exp(-(d/L)^2) * damping).
    depth = -head.distance[crop]
    damping = np.clip(depth / 10.0, 0.0, 1.0)
    factor = 1.0 - push * np.exp(-((dist / push_length) ** 2)) * damping
    coords = [ci + (g / r) * factor for g, ci in zip(rel, c, strict=True)]
    gm = ndi.map_coordinates(t.gm[crop], coords, order=1, mode="nearest")
    wm = ndi.map_coordinates(t.wm[crop], coords, order=1, mode="nearest")
    del coords, factor
    brain = t.brain_mask[crop]
    x_world = grid_world_axes(t.affine, t.gm.shape)[0][crop[0]]
    allowed = brain & (hemisphere * x_world > 2.0) & (depth > 2.0)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)

    # 2. multi-lobed core: max of ellipsoid bumps plus smooth noise, top-N voxels.
    n_lobes = int(rng.integers(2, 6))
    bumps = np.full(shape, -np.inf, dtype=np.float32)
    for _ in range(n_lobes):
        offset = rng.normal(size=3) * 0.35 * r_tc
        radii = r_tc * rng.uniform(0.45, 0.9, size=3)
        q = sum(((g - o) / a) ** 2 for g, o, a in zip(rel, offset, radii, strict=True))
        bumps = np.maximum(bumps, 1.0 - q)
    score = bumps + 0.3 * _smooth_noise(shape, 3.0 / r, rng)
    core = _largest_component(_top_n(score, allowed, int(tc_volume * ml_vox)))
    core = ndi.binary_fill_holes(core)

    # 3. enhancing rim of locally varying thickness; necrosis inside.
    core_depth = ndi.distance_transform_edt(core, sampling=r)
    rim = rim_mm * (1.0 + 0.3 * np.tanh(_smooth_noise(shape, 4.0 / r, rng)))
    rim = np.minimum(rim, max(0.6 * core_depth.max(), r))
    enhancing = core & (core_depth <= rim)
    necrosis = core & ~enhancing

    # 4. oedema spreading along white matter.
    to_core = ndi.distance_transform_edt(~core, sampling=r)
    potential = np.exp(-to_core / oedema_length) * (wm + 0.15 * gm)
    potential *= np.exp(0.4 * _smooth_noise(shape, 3.0 / r, rng))
    potential[~allowed | core | (csf > 0.6)] = 0.0
    n_oedema = int((wt_volume - tc_volume) * ml_vox)
    oedema = _top_n(potential, potential > 0, n_oedema) & ~core

    labels = np.zeros(shape, dtype=np.uint8)
    labels[oedema] = 2
    labels[enhancing] = 4
    labels[necrosis] = 1
    if not {1, 2, 4} <= set(np.unique(labels).tolist()):
        raise RuntimeError(f"tumour lost a label (volumes {wt_volume:.1f}/{tc_volume:.1f} ml)")
    sigma = blur_mm / r
    soft = np.stack(
        [
            ndi.gaussian_filter((labels > 0).astype(np.float32), sigma),
            ndi.gaussian_filter(core.astype(np.float32), sigma),
            ndi.gaussian_filter(necrosis.astype(np.float32), sigma),
            _smooth_noise(shape, 2.0 / r, rng),
        ]
    )
    world = t.affine @ np.append(centre, 1.0)
    params = {
        "hemisphere": "left" if hemisphere < 0 else "right",
        "centre_mni_mm": [round(float(v), 2) for v in world[:3]],
        "volume_ml": {
            "whole_tumour": round(float((labels > 0).sum() / ml_vox), 2),
            "tumour_core": round(float(core.sum() / ml_vox), 2),
            "enhancing": round(float(enhancing.sum() / ml_vox), 2),
            "necrosis": round(float(necrosis.sum() / ml_vox), 2),
        },
        "lobes": n_lobes,
        "rim_mm": round(float(rim_mm), 2),
        "oedema_length_mm": round(float(oedema_length), 2),
        "mass_effect": {"push": round(float(push), 3), "length_mm": round(float(push_length), 2)},
    }
    return Tumour(crop=crop, gm=gm, wm=wm, labels=labels, soft=soft, params=params)

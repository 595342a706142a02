"""nnU-Net v2 style experiment planning: the rules from a dataset fingerprint to a plan.

The rules follow nnU-Net v2's ``ExperimentPlanner`` (``nnunetv2/experiment_planning/
experiment_planners/default_experiment_planner.py``) and ``get_pool_and_conv_props``
(``network_topology.py``); Isensee et al., "nnU-Net: a self-configuring method for deep
learning-based biomedical image segmentation", Nature Methods 18, 2021. nnU-Net itself is not a
dependency (it pulls its own training stack), so the few rules are re-implemented here and the
network is MONAI's ``DynUNet``.

Axis order: nnU-Net reads images with SimpleITK, whose arrays are in reversed (z, y, x) order,
and then moves the coarsest axis first (``determine_transpose``). The shrinking loop breaks ties
between axes equally large relative to the median shape by that order (``np.argsort(...)[-1]``:
the last of the tied axes), so the plan is computed in nnU-Net's order and mapped back to the
data's (x, y, z) axes (:func:`nnunet_axis_order`): on a 1 x 1 x 5 mm data set with a square
240 x 240 plane the patch is 224 x 256 x 32 in (x, y, z), as nnU-Net plans it.

Deliberate differences from the reference, for a single 3d_fullres configuration:

* at most ``max_stages`` resolution stages (default 6), the reference has no cap;
* the kernel-size rule compares each axis' own current spacing with the finest one (the
  reference indexes a filtered list by axis number, which only matters when an axis already
  stopped pooling because of its size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "PLANS_FORMAT",
    "estimate_feature_map_size",
    "nnunet_axis_order",
    "plan_from_fingerprint",
    "pool_and_conv_props",
]

PLANS_FORMAT = "mrivol-plans/1"
REFERENCE_VOXELS_3D = 560_000_000  # nnU-Net v2 UNet_reference_val_3d, corresponds to 8 GB
REFERENCE_GPU_GB = 8.0
REFERENCE_BATCH_SIZE = 2
INITIAL_PATCH_VOXELS = 256**3

RULES = {
    "target_spacing": "median spacing per axis; if the coarsest axis is > anisotropy_threshold x "
    "the others' spacing and has < 1/anisotropy_threshold of their median voxels, its 10th "
    "percentile (not finer than the other axes)",
    "patch_size": "shaped like 1/spacing with the volume of 256^3, clipped to the median shape "
    "after resampling, padded to a multiple of 2^pools; shrunk along the axis largest relative "
    "to the median shape until the feature-map estimate fits the memory budget",
    "pooling": "pool (stride 2) only axes whose spacing is < 2x the finest current spacing and "
    "whose size stays >= 2 * min_feature_map_size; a single poolable axis needs >= 3x",
    "kernel_sizes": "3 on axes within 2x of the finest current spacing, else 1 (once 3, stays 3); "
    "bottleneck 3",
    "filters": "min(base_features * 2^stage, max_features)",
    "batch_size": "round(budget / estimate * 2), at most 5% of the dataset voxels per batch, >= 2",
    "normalization": "z-score per channel; inside the non-zero mask if cropping kept < 3/4",
}
REFERENCES = [
    "Isensee et al., nnU-Net, Nature Methods 18:203-211 (2021)",
    "nnunetv2/experiment_planning/experiment_planners/default_experiment_planner.py",
    "nnunetv2/experiment_planning/experiment_planners/network_topology.py",
    "dynamic_network_architectures PlainConvUNet.compute_conv_feature_map_size",
]


def _target_spacing(spacings: np.ndarray, shapes: np.ndarray, threshold: float) -> np.ndarray:
    """nnU-Net's ``determine_fullres_target_spacing`` (see ``RULES["target_spacing"]``)."""
    target = np.percentile(spacings, 50, axis=0)
    target_size = np.percentile(shapes, 50, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    aniso_spacing = target[worst] > threshold * max(target[others])
    aniso_voxels = target_size[worst] * threshold < min(target_size[others])
    if aniso_spacing and aniso_voxels:
        tenth = float(np.percentile(spacings[:, worst], 10))
        if tenth < max(target[others]):
            tenth = max(max(target[others]), tenth) + 1e-5
        target[worst] = tenth
    return target


def nnunet_axis_order(target_spacing: Sequence[float]) -> list[int]:
    """The data axes in the order nnU-Net v2 plans them: SimpleITK's reversed order, coarsest first.

    nnU-Net's ``determine_transpose`` puts the axis of the largest target spacing (the first
    one on ties, ``np.argmax``) first and keeps the others in order, all on SimpleITK arrays,
    whose axes are the reverse of NIfTI's (x, y, z).

    Args:
        target_spacing: target spacing per data axis (x, y, z).

    Returns:
        ``order`` such that nnU-Net's axis ``i`` is data axis ``order[i]``.

    Examples:
        >>> nnunet_axis_order([1.0, 1.0, 5.0])
        [2, 1, 0]
        >>> nnunet_axis_order([3.0, 1.0, 1.0])
        [0, 2, 1]
    """
    reversed_axes = list(range(len(target_spacing)))[::-1]
    coarsest = int(np.argmax([target_spacing[a] for a in reversed_axes]))
    rest = [a for i, a in enumerate(reversed_axes) if i != coarsest]
    return [reversed_axes[coarsest], *rest]


def pool_and_conv_props(
    spacing: Sequence[float],
    patch_size: Sequence[float],
    *,
    min_feature_map_size: int = 4,
    max_stages: int | None = 6,
) -> tuple[list[list[int]], list[list[int]], list[int], list[int]]:
    """Network topology for a patch: nnU-Net v2's ``get_pool_and_conv_props``.

    Args:
        spacing: voxel spacing of the patch, per axis (mm).
        patch_size: candidate patch size (voxels).
        min_feature_map_size: smallest edge of a bottleneck feature map.
        max_stages: cap on resolution stages (``None``: no cap, as the reference).

    Returns:
        ``(strides, kernel_sizes, patch_size, divisor)``: strides per stage (first ``[1]*dim``),
        kernel sizes per stage (last, the bottleneck, all 3), the patch padded to a multiple
        of ``divisor = 2 ** pools_per_axis``.

    Examples:
        >>> strides, kernels, patch, div = pool_and_conv_props([1.0, 1.0, 1.0], [128, 128, 128])
        >>> len(strides), patch, div
        (6, [128, 128, 128], [32, 32, 32])
    """
    dim = len(spacing)
    cur_spacing = [float(s) for s in spacing]
    cur_size = [float(s) for s in patch_size]
    strides: list[list[int]] = [[1] * dim]
    kernels: list[list[int]] = []
    pools = [0] * dim
    kernel = [1] * dim
    while max_stages is None or len(strides) < max_stages:
        valid = [i for i in range(dim) if cur_size[i] >= 2 * min_feature_map_size]
        if not valid:
            break
        finest = min(cur_spacing[i] for i in valid)
        valid = [i for i in valid if cur_spacing[i] / finest < 2]
        if len(valid) == 1 and cur_size[valid[0]] < 3 * min_feature_map_size:
            break
        if not valid:
            break
        for d in range(dim):
            if kernel[d] != 3 and cur_spacing[d] / min(cur_spacing) < 2:
                kernel[d] = 3
        stride = [1] * dim
        for i in valid:
            stride[i] = 2
            pools[i] += 1
            cur_spacing[i] *= 2
            cur_size[i] = float(np.ceil(cur_size[i] / 2))
        strides.append(stride)
        kernels.append(list(kernel))
    divisor = [2**p for p in pools]
    padded = [
        int(s + d - s % d) if s % d else int(s) for s, d in zip(patch_size, divisor, strict=True)
    ]
    kernels.append([3] * dim)
    return strides, kernels, padded, divisor


def estimate_feature_map_size(
    patch_size: Sequence[int],
    strides: Sequence[Sequence[int]],
    filters: Sequence[int],
    *,
    num_classes: int,
    convs_per_stage: int = 2,
) -> int:
    """Sum of the conv feature-map sizes of a plain U-Net, nnU-Net's memory proxy.

    Encoder: ``convs_per_stage`` conv outputs per stage; decoder (all but the bottleneck):
    ``convs_per_stage`` convs plus the transposed conv output; one segmentation output at full
    resolution. As ``PlainConvUNet.compute_conv_feature_map_size`` in
    ``dynamic_network_architectures``.

    Args:
        patch_size: patch size (voxels).
        strides: strides per stage (first all 1).
        filters: channels per stage.
        num_classes: segmentation outputs (nnU-Net counts the background label).
        convs_per_stage: convolutions per stage.

    Returns:
        The number of feature-map elements for one sample.
    """
    size = [int(s) for s in patch_size]
    stage_voxels = []
    for stride in strides:
        size = [s // st for s, st in zip(size, stride, strict=True)]
        stage_voxels.append(int(np.prod(size, dtype=np.int64)))
    encoder = sum(convs_per_stage * f * v for f, v in zip(filters, stage_voxels, strict=True))
    decoder = sum(
        (convs_per_stage + 1) * f * v for f, v in zip(filters, stage_voxels[:-1], strict=False)
    )
    return int(encoder + decoder + num_classes * stage_voxels[0])


def plan_from_fingerprint(
    fingerprint: dict[str, Any],
    *,
    gpu_memory_gb: float = 8.0,
    num_classes: int | None = None,
    base_features: int = 32,
    max_features: int = 320,
    min_feature_map_size: int = 4,
    max_stages: int | None = 6,
    min_batch_size: int = 2,
    max_dataset_fraction: float = 0.05,
    anisotropy_threshold: float = 3.0,
) -> dict[str, Any]:
    """Derive a 3D U-Net plan (spacing, patch, topology, batch) from a dataset fingerprint.

    Args:
        fingerprint: output of :func:`mrivol.networks.compute_fingerprint` (needs
            ``spacings`` and ``shapes_after_crop``; intensity properties are copied).
        gpu_memory_gb: GPU memory target; the budget is 560e6 feature-map elements per 8 GB at
            batch size 2 (nnU-Net v2's reference value).
        num_classes: segmentation outputs incl. background (default: number of label values in
            the fingerprint, else 2); only enters the memory estimate.
        base_features: filters of the first stage.
        max_features: filter cap (320 for 3D in nnU-Net).
        min_feature_map_size: smallest bottleneck edge.
        max_stages: cap on resolution stages (``None``: uncapped, as the reference).
        min_batch_size: lower bound of the batch size.
        max_dataset_fraction: at most this fraction of the dataset's voxels in one batch.
        anisotropy_threshold: spacing / size ratio that marks an anisotropic axis (3).

    Returns:
        The plans dict (JSON-serialisable): ``target_spacing``, ``patch_size``,
        ``batch_size``, ``strides``, ``kernel_sizes``, ``filters``, ``num_pool_per_axis``,
        ``median_shape_after_resampling``, ``normalization``, ``memory``, ``rules``,
        ``references``.

    Raises:
        ValueError: if the fingerprint lacks spacings / shapes or they are not positive.

    Examples:
        >>> fp = {"spacings": [[1.0, 1.0, 1.0]] * 3, "shapes_after_crop": [[140, 170, 140]] * 3}
        >>> plan_from_fingerprint(fp)["patch_size"]
        [128, 128, 128]
    """
    try:
        spacings = np.asarray(fingerprint["spacings"], dtype=np.float64)
        shapes = np.asarray(fingerprint["shapes_after_crop"], dtype=np.float64)
    except KeyError as err:
        raise ValueError(
            f"plan_from_fingerprint: fingerprint has no {err}; compute it with "
            "mrivol.networks.compute_fingerprint."
        ) from err
    if spacings.ndim != 2 or spacings.shape != shapes.shape or spacings.shape[0] == 0:
        raise ValueError(
            f"plan_from_fingerprint: spacings {spacings.shape} and shapes_after_crop "
            f"{shapes.shape} must both be (num_cases, dims) with num_cases >= 1."
        )
    if (spacings <= 0).any() or (shapes <= 0).any():
        raise ValueError("plan_from_fingerprint: spacings and shapes must all be positive.")
    if num_classes is None:
        num_classes = max(len(fingerprint.get("labels") or []), 2)

    # plan in nnU-Net's axis order (module docstring); `back` maps the results to the data's
    rev = list(range(spacings.shape[1]))[::-1]
    order = nnunet_axis_order(
        _target_spacing(spacings[:, rev], shapes[:, rev], anisotropy_threshold)[rev]
    )
    back = list(np.argsort(order))
    spacings, shapes = spacings[:, order], shapes[:, order]
    spacing = _target_spacing(spacings, shapes, anisotropy_threshold)
    new_shapes = np.round(spacings / spacing * shapes)  # nnU-Net's compute_new_shape
    median_shape = np.median(new_shapes, axis=0)
    dataset_voxels = float(np.prod(median_shape)) * len(shapes)

    def filters_for(n_stages: int) -> list[int]:
        return [min(max_features, base_features * 2**i) for i in range(n_stages)]

    def topology(patch: Sequence[float]) -> tuple[list, list, list[int], list[int]]:
        return pool_and_conv_props(
            spacing, patch, min_feature_map_size=min_feature_map_size, max_stages=max_stages
        )

    inv = 1.0 / spacing
    initial = np.round(inv * (INITIAL_PATCH_VOXELS / np.prod(inv)) ** (1 / len(spacing)))
    initial = np.minimum(initial, median_shape)
    strides, kernels, patch, divisor = topology(initial)
    budget = REFERENCE_VOXELS_3D * gpu_memory_gb / REFERENCE_GPU_GB

    def estimate() -> int:
        filters = filters_for(len(strides))
        return estimate_feature_map_size(patch, strides, filters, num_classes=num_classes)

    while estimate() / REFERENCE_BATCH_SIZE * min_batch_size > budget:
        # shrink the axis that is largest relative to the median shape by one divisor step
        axis = int(np.argsort(np.asarray(patch) / median_shape, kind="stable")[-1])
        trial = list(patch)
        trial[axis] -= divisor[axis]
        _, _, _, divisor_after = topology(trial)
        patch = list(patch)
        patch[axis] -= divisor_after[axis]
        strides, kernels, patch, divisor = topology(patch)
    est = estimate()
    batch_size = round(budget / est * REFERENCE_BATCH_SIZE)
    batch_cap = round(dataset_voxels * max_dataset_fraction / float(np.prod(patch)))
    batch_size = max(min(batch_size, batch_cap), min_batch_size)

    n_channels = len(fingerprint.get("channel_names") or []) or len(
        fingerprint.get("foreground_intensity_properties_per_channel") or {}
    )
    use_mask = float(fingerprint.get("median_relative_size_after_cropping", 1.0)) < 0.75

    def data_axes(values: Sequence[Any], kind: type) -> list:
        return [kind(values[i]) for i in back]

    return {
        "format": PLANS_FORMAT,
        "configuration": "3d_fullres",
        "target_spacing": data_axes(spacing, float),
        "median_shape_after_resampling": data_axes(median_shape, float),
        "patch_size": data_axes(patch, int),
        "batch_size": int(batch_size),
        "strides": [data_axes(st, int) for st in strides],
        "kernel_sizes": [data_axes(ks, int) for ks in kernels],
        "filters": filters_for(len(strides)),
        "num_pool_per_axis": data_axes([int(np.log2(d)) for d in divisor], int),
        "nnunet_axis_order": [int(a) for a in order],
        "normalization": {
            "schemes": ["ZScoreNormalization"] * n_channels,
            "use_mask_for_norm": [use_mask] * n_channels,
            "channel_names": list(fingerprint.get("channel_names") or []),
            "foreground_intensity_properties_per_channel": fingerprint.get(
                "foreground_intensity_properties_per_channel", {}
            ),
        },
        "memory": {
            "gpu_memory_gb": float(gpu_memory_gb),
            "budget_feature_map_elements": float(budget),
            "estimate_feature_map_elements": int(est),
            "num_classes_for_estimate": int(num_classes),
        },
        "rules": RULES,
        "references": REFERENCES,
    }

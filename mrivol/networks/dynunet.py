"""MONAI's DynUNet built from an nnU-Net v2-style plan (:mod:`mrivol.planning`).

Isensee et al., "nnU-Net: a self-configuring method for deep learning-based biomedical image
segmentation", Nature Methods 18, 2021: per-axis strides and kernels from the plan, instance
norm and leaky ReLU, deep supervision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai.networks.nets import DynUNet

from mrivol.planning.plans import read_plans

__all__ = ["build_dynunet"]


def build_dynunet(
    plans: dict[str, Any] | str | Path,
    *,
    in_channels: int,
    out_channels: int,
    dropout: float = 0.0,
    deep_supervision: bool = True,
    deep_supr_num: int | None = None,
    res_block: bool = False,
) -> DynUNet:
    """Build MONAI's ``DynUNet`` from a plans dict or JSON file (instance norm, leaky ReLU).

    Args:
        plans: plans dict or path to a plans JSON.
        in_channels: input channels.
        out_channels: output channels.
        dropout: dropout of every conv block (0 = none).
        deep_supervision: stacked deep-supervision outputs in training mode.
        deep_supr_num: number of deep-supervision heads (< number of stages - 1); ``None``:
            2, or fewer for shallow plans (``min(2, stages - 2)``).
        res_block: residual conv blocks (nnU-Net ResEnc-like) instead of plain ones.

    Returns:
        The network; input (B, in_channels, *patch_size), output (B, out_channels, ...) in
        eval mode and (B, 1 + deep_supr_num, out_channels, ...) in training mode.

    Raises:
        ValueError: if ``deep_supr_num`` does not fit the number of stages.

    Examples:
        >>> net = build_dynunet({"strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
        ...                      "kernel_sizes": [[3, 3, 3]] * 3, "filters": [8, 16, 32],
        ...                      "patch_size": [16, 16, 16]}, in_channels=1, out_channels=2,
        ...                     deep_supr_num=1)
    """
    if not isinstance(plans, dict):
        plans = read_plans(plans)
    strides, kernels = plans["strides"], plans["kernel_sizes"]
    if deep_supr_num is None:
        deep_supr_num = max(1, min(2, len(strides) - 2))
    if deep_supervision and not 1 <= deep_supr_num <= len(strides) - 2:
        raise ValueError(
            f"build_dynunet: deep_supr_num must be in 1..{len(strides) - 2} for a plan with "
            f"{len(strides)} stages, got {deep_supr_num}."
        )
    return DynUNet(
        spatial_dims=len(plans["patch_size"]),
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=plans["filters"],
        dropout=dropout if dropout > 0 else None,
        norm_name=("INSTANCE", {"affine": True}),
        act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
        deep_supervision=deep_supervision,
        deep_supr_num=deep_supr_num,
        res_block=res_block,
    )

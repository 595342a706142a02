"""Multiscale feature extraction: parallel dilated convolutions, fused by a 1x1x1 convolution."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv
from torch import nn

__all__ = ["MultiScaleBlock"]


class MultiScaleBlock(nn.Module):
    """Parallel 3x3x3 convolutions with different dilation rates, concatenated and fused.

    Each branch sees a different receptive field (dilation ``d`` covers ``2d+1`` voxels per
    axis); a 1x1x1 convolution fuses the branches and a residual connection keeps the input.
    The design follows atrous spatial pyramid pooling (Chen et al., "Rethinking Atrous
    Convolution for Semantic Image Segmentation", 2017, https://arxiv.org/abs/1706.05587) as
    used in multiscale 3D CNNs for brain tumour segmentation. MONAI's
    ``SimpleASPP`` (``monai.networks.blocks``) is close but uses batch norm and no residual.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        channels: input and output channels.
        dilations: one branch per dilation rate, e.g. ``(1, 2, 4)``.
        norm: MONAI norm name for the branches (default instance norm).
        act: MONAI activation name (default leaky ReLU).

    Examples:
        >>> block = MultiScaleBlock(spatial_dims=3, channels=8, dilations=(1, 2, 4))
        >>> block(torch.randn(1, 8, 7, 9, 5)).shape
        torch.Size([1, 8, 7, 9, 5])
    """

    def __init__(
        self,
        *,
        spatial_dims: int,
        channels: int,
        dilations: Sequence[int] = (1, 2, 4),
        norm: str | tuple = ("instance", {"affine": True}),
        act: str | tuple = ("leakyrelu", {"negative_slope": 0.01, "inplace": True}),
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            Convolution(
                spatial_dims,
                channels,
                channels,
                kernel_size=3,
                dilation=int(d),
                padding=int(d),  # "same" size for a 3-wide kernel with dilation d
                norm=norm,
                act=act,
            )
            for d in dilations
        )
        self.fuse = Conv[Conv.CONV, spatial_dims](channels * len(dilations), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + fuse(concat(branches(x)))``, same shape (B, C, H, W, D) as ``x``."""
        return x + self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))

"""MONAI's residual U-Net with resize-convolution upsampling instead of transposed convolutions.

A stride-2 transposed convolution with a 3-wide kernel (MONAI ``UNet``'s up path) adds up
unevenly many kernel taps at even and odd output positions, which leaves a 2-voxel
checkerboard in the output (Odena, Dumoulin and Olah, "Deconvolution and Checkerboard
Artifacts", Distill 2016). MONAI's ``UNet`` ends in such a layer, so the brats_seg
probabilities carried the pattern, and the MC-dropout entropy maps of ``make evaluate`` showed
it as a regular grid over the whole head (measured: the power of the probability map at the
2-voxel frequency was ~58x the median of its spectrum). Upsampling by trilinear interpolation
followed by an ordinary (stride-1) convolution, as Odena et al. recommend, has no such
pattern. Everything else (encoder, residual units, dropout, norm) is MONAI's ``UNet``; only
``_get_up_layer`` differs, so MC dropout and checkpoints work as for ``UNet``.

Examples:
    >>> import torch
    >>> net = ResizeConvUNet(spatial_dims=3, in_channels=4, out_channels=3,
    ...                      channels=(8, 16, 32), strides=(2, 2), num_res_units=1)
    >>> net(torch.randn(1, 4, 16, 16, 16)).shape
    torch.Size([1, 3, 16, 16, 16])
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.nets import UNet
from torch import nn

__all__ = ["ResizeConvUNet"]


class ResizeConvUNet(UNet):
    """MONAI ``UNet`` whose up layers are trilinear upsampling + a stride-1 convolution.

    Takes exactly MONAI ``UNet``'s arguments (Kerfoot et al., STACOM 2018); ``up_kernel_size``
    is the kernel of the convolution after the upsampling.
    """

    def _get_up_layer(
        self, in_channels: int, out_channels: int, strides: int | Sequence[int], is_top: bool
    ) -> nn.Module:
        scale = tuple(strides) if isinstance(strides, Sequence) else strides
        conv = Convolution(
            self.dimensions,
            in_channels,
            out_channels,
            strides=1,
            kernel_size=self.up_kernel_size,
            act=self.act,
            norm=self.norm,
            dropout=self.dropout,
            bias=self.bias,
            conv_only=is_top and self.num_res_units == 0,
            adn_ordering=self.adn_ordering,
        )
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[self.dimensions]
        up: nn.Module = nn.Sequential(
            nn.Upsample(scale_factor=scale, mode=mode, align_corners=False), conv
        )
        if self.num_res_units > 0:
            ru = ResidualUnit(
                self.dimensions,
                out_channels,
                out_channels,
                strides=1,
                kernel_size=self.kernel_size,
                subunits=1,
                act=self.act,
                norm=self.norm,
                dropout=self.dropout,
                bias=self.bias,
                last_conv_only=is_top,
                adn_ordering=self.adn_ordering,
            )
            up = nn.Sequential(up, ru)
        return up

"""One shared encoder, a segmentation decoder and a classification head (multi-task U-Net).

The seed's unified framework: the encoder's features serve both tasks, so segmentation
supervision shapes the representation the classifier reads (Caruana, "Multitask Learning",
Machine Learning 28, 1997; the encoder-decoder is a residual U-Net after Ronneberger et al.,
MICCAI 2015, and Kerfoot et al., STACOM 2018, built from MONAI's ``ResidualUnit`` and
``Convolution`` blocks). MONAI's ``UNet`` does not expose its bottleneck, hence this module.
Encoder parameters live under ``encoder.`` so transfer learning can load and freeze them
(:mod:`mrivol.training.transfer_learning`).

Examples:
    >>> net = MultiTaskUNet(in_channels=4, seg_channels=3, num_classes=2, channels=(8, 16, 32))
    >>> seg, cls = net(torch.randn(2, 4, 32, 32, 32))
    >>> seg.shape, cls.shape
    (torch.Size([2, 3, 32, 32, 32]), torch.Size([2, 2]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

__all__ = ["MultiTaskUNet"]


class MultiTaskUNet(nn.Module):
    """Residual U-Net whose bottleneck also feeds a pooled linear classifier.

    Args:
        spatial_dims: 3 (or 2).
        in_channels: input channels (e.g. 4 MRI modalities).
        seg_channels: segmentation output channels (e.g. 3 BraTS regions, sigmoid).
        num_classes: classification logits.
        channels: features per level, coarsest last; ``len(channels) - 1`` downsamplings by 2.
        num_res_units: residual units per block.
        norm: MONAI norm name (``"INSTANCE"`` has no running statistics, so a frozen encoder
            stays bit-identical).
        dropout: dropout inside the blocks and before the classifier.

    Raises:
        ValueError: for fewer than two levels or non-positive sizes.
    """

    def __init__(
        self,
        *,
        spatial_dims: int = 3,
        in_channels: int,
        seg_channels: int,
        num_classes: int,
        channels: Sequence[int] = (16, 32, 64, 128),
        num_res_units: int = 1,
        norm: str = "INSTANCE",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"MultiTaskUNet: need >= 2 positive channel levels, got {channels}.")
        for name, value in (("in_channels", in_channels), ("seg_channels", seg_channels)):
            if value < 1:
                raise ValueError(f"MultiTaskUNet: {name} must be >= 1, got {value}.")
        if num_classes < 2:
            raise ValueError(f"MultiTaskUNet: num_classes must be >= 2, got {num_classes}.")

        def block(cin: int, cout: int, stride: int) -> nn.Module:
            return ResidualUnit(
                spatial_dims, cin, cout, strides=stride, subunits=max(1, num_res_units),
                norm=norm, dropout=dropout,
            )  # fmt: skip

        self.encoder = nn.ModuleList(
            [block(in_channels, channels[0], 1)]
            + [block(channels[i - 1], channels[i], 2) for i in range(1, len(channels))]
        )
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(len(channels) - 1, 0, -1):
            self.up.append(
                Convolution(
                    spatial_dims,
                    channels[i],
                    channels[i - 1],
                    strides=2,
                    kernel_size=3,
                    is_transposed=True,
                    norm=norm,
                    dropout=dropout,
                )  # fmt: skip
            )
            self.decoder.append(block(2 * channels[i - 1], channels[i - 1], 1))
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.seg_head = conv(channels[0], seg_channels, 1)
        pool = nn.AdaptiveAvgPool3d(1) if spatial_dims == 3 else nn.AdaptiveAvgPool2d(1)
        self.cls_head = nn.Sequential(
            pool, nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels[-1], num_classes)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segment and classify ``x`` (B, C, H, W, D); sizes divisible by ``2**(levels-1)``.

        Returns:
            ``(seg_logits (B, seg_channels, H, W, D), class_logits (B, num_classes))``.
        """
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        logits = self.cls_head(x)
        for up, dec, skip in zip(self.up, self.decoder, reversed(skips[:-1]), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.seg_head(x), logits

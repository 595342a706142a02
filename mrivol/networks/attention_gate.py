"""Additive attention gate for U-Net skip connections (Oktay et al., 2018)."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv, Norm
from torch import nn

__all__ = ["AttentionGate"]


class AttentionGate(nn.Module):
    """Additive attention gate: weight a skip connection by a gating signal from the decoder.

    ``alpha = sigmoid(psi(relu(W_x x + W_g g)))`` and the output is ``x * alpha``, with
    1x1x1 convolutions ``W_x``, ``W_g``, ``psi``.

    Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018
    (https://arxiv.org/abs/1804.03999). Follows ``AttentionBlock`` in
    ``monai.networks.nets.attentionunet``, which is not exported (not in that module's
    ``__all__``) and hard-codes batch norm; this version uses instance norm (small 3D batches)
    and expects ``g`` already resampled to the size of ``x``.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        skip_channels: channels of the skip connection ``x``.
        gate_channels: channels of the gating signal ``g``.
        inter_channels: channels of the intermediate space (default: ``skip_channels // 2``,
            at least 1).

    Examples:
        >>> gate = AttentionGate(spatial_dims=3, skip_channels=16, gate_channels=16)
        >>> x, g = torch.randn(2, 16, 9, 9, 9), torch.randn(2, 16, 9, 9, 9)
        >>> gate(x, g).shape
        torch.Size([2, 16, 9, 9, 9])
    """

    def __init__(
        self,
        *,
        spatial_dims: int,
        skip_channels: int,
        gate_channels: int,
        inter_channels: int | None = None,
    ) -> None:
        super().__init__()
        inter = inter_channels if inter_channels is not None else max(skip_channels // 2, 1)
        conv = Conv[Conv.CONV, spatial_dims]
        norm = Norm[Norm.INSTANCE, spatial_dims]
        self.w_x = nn.Sequential(
            conv(skip_channels, inter, 1, bias=False), norm(inter, affine=True)
        )
        self.w_g = nn.Sequential(
            conv(gate_channels, inter, 1, bias=False), norm(inter, affine=True)
        )
        self.psi = nn.Sequential(conv(inter, 1, 1, bias=True), nn.Sigmoid())
        self.act = nn.ReLU(inplace=True)
        self.last_alpha: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Gate ``x`` (B, C_x, H, W, D) with ``g`` (B, C_g, H, W, D); returns (B, C_x, H, W, D).

        The attention coefficients (B, 1, H, W, D) of the last call are kept, detached, in
        ``last_alpha`` for visualisation.
        """
        alpha = self.psi(self.act(self.w_x(x) + self.w_g(g)))
        self.last_alpha = alpha.detach()
        return x * alpha

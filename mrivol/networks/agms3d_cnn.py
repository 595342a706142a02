"""AG-MS3D-CNN: attention-guided multiscale 3D CNN for segmentation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import UnetOutBlock, UnetResBlock
from monai.networks.layers.factories import Conv
from torch import nn

from mrivol.networks.attention_gate import AttentionGate
from mrivol.networks.multiscale_block import MultiScaleBlock

__all__ = ["AGMS3DCNN"]

_NORM = ("instance", {"affine": True})
_ACT = ("leakyrelu", {"negative_slope": 0.01, "inplace": True})
_DROPOUT_MODES = ("spatial", "element")


def _match_size(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Zero-pad or crop the trailing side of each spatial axis of ``x`` to ``size``."""
    pads: list[int] = []
    for have, want in zip(reversed(x.shape[2:]), reversed(tuple(size)), strict=True):
        pads += [0, int(want) - int(have)]  # negative padding crops
    return F.pad(x, pads) if any(pads) else x


class AGMS3DCNN(nn.Module):
    """Attention-guided multiscale 3D CNN: residual U-Net, gated skips, dilated multiscale blocks.

    Architecture, for ``features=(16, 32, 64, 128)``:

    * encoder: one MONAI ``UnetResBlock`` per level (stride 1, then stride-2 downsampling),
      with a :class:`MultiScaleBlock` (parallel dilated convolutions, dilations
      ``dilations``, fused by 1x1x1) after every downsampled stage when ``multiscale_encoder``
      and always at the bottleneck (the last entry of ``features``);
    * decoder: transposed convolution, size matching to the skip (so odd patch sizes work),
      an additive :class:`AttentionGate` on every skip connection (Oktay et al. 2018),
      concatenation, ``UnetResBlock``;
    * deep supervision: 1x1x1 heads on the ``ds_heads`` decoder levels below full resolution.

    Output convention (same as MONAI ``DynUNet``): in training mode with ``deep_supervision``
    the network returns (B, 1 + ds_heads, C, H, W, D), index 0 the full-resolution output and
    then the heads from finer to coarser, each linearly upsampled to the input size; use
    ``monai.losses.DeepSupervisionLoss(loss)(torch.unbind(out, dim=1), target)``. In eval mode
    it returns only the main output (B, C, H, W, D).

    Dropout placement (MC dropout): one dropout layer on the bottleneck output and one after
    every decoder block, none in the encoder. The encoder, bottleneck and multiscale blocks
    are therefore deterministic: :meth:`forward_features` computes them once and
    :meth:`forward_head` runs the stochastic rest, so T MC samples can reuse one encoder pass.
    Putting dropout in the decoder only follows Bayesian SegNet (Kendall et al. 2017), who
    found dropout on the deeper / decoder layers to give the best uncertainty; dropout at the
    bottleneck perturbs every decoder path, the per-level dropouts every scale.

    References: Ronneberger et al., U-Net, MICCAI 2015; Oktay et al., "Attention U-Net",
    MIDL 2018 (https://arxiv.org/abs/1804.03999); Chen et al., atrous convolution,
    https://arxiv.org/abs/1706.05587; Isensee et al., nnU-Net, residual blocks from MONAI
    ``DynUNet``; Gal & Ghahramani, ICML 2016 (MC dropout).

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        in_channels: input channels (e.g. 4 for BraTS T1, T1ce, T2, FLAIR).
        out_channels: output channels (classes, or 3 BraTS regions).
        features: channels per level, finest first; the last one is the bottleneck. At
            least 3 levels; the input is downsampled ``len(features) - 1`` times.
        dropout: drop probability of the decoder dropout layers (0 disables them; MC dropout
            then refuses the model).
        dropout_mode: ``"spatial"`` drops whole channels (``nn.Dropout3d``; Tompson et al.
            2015) or ``"element"`` single activations (``nn.Dropout``).
        deep_supervision: return the stacked deep-supervision heads in training mode.
        ds_heads: number of lower-resolution heads, 1 .. len(features) - 2.
        dilations: dilation rates of the multiscale branches (each >= 1).
        multiscale_encoder: also apply a multiscale block after every downsampled encoder
            stage (the bottleneck always gets one).

    Raises:
        ValueError: for an invalid argument (message names it and the allowed values).

    Examples:
        >>> net = AGMS3DCNN(in_channels=4, out_channels=3, features=(8, 16, 32, 64))
        >>> net.train()(torch.randn(1, 4, 33, 35, 31)).shape
        torch.Size([1, 3, 3, 33, 35, 31])
        >>> net.eval()(torch.randn(1, 4, 33, 35, 31)).shape
        torch.Size([1, 3, 33, 35, 31])
    """

    def __init__(
        self,
        *,
        spatial_dims: int = 3,
        in_channels: int,
        out_channels: int,
        features: Sequence[int] = (16, 32, 64, 128),
        dropout: float = 0.1,
        dropout_mode: str = "spatial",
        deep_supervision: bool = True,
        ds_heads: int = 2,
        dilations: Sequence[int] = (1, 2, 4),
        multiscale_encoder: bool = True,
    ) -> None:
        super().__init__()
        features = tuple(int(f) for f in features)
        if spatial_dims not in (2, 3):
            raise ValueError(f"AGMS3DCNN: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"AGMS3DCNN: in_channels and out_channels must be >= 1, got {in_channels} "
                f"and {out_channels}."
            )
        if len(features) < 3 or any(f < 1 for f in features):
            raise ValueError(
                f"AGMS3DCNN: features needs at least 3 positive entries (levels), got {features}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"AGMS3DCNN: dropout must be in [0, 1), got {dropout}.")
        if dropout_mode not in _DROPOUT_MODES:
            raise ValueError(
                f"AGMS3DCNN: dropout_mode must be one of {_DROPOUT_MODES}, got {dropout_mode!r}."
            )
        if deep_supervision and not 1 <= ds_heads <= len(features) - 2:
            raise ValueError(
                f"AGMS3DCNN: ds_heads must be in 1..{len(features) - 2} for "
                f"{len(features)} levels, got {ds_heads}; or set deep_supervision=False."
            )
        if len(dilations) < 1 or any(int(d) < 1 for d in dilations):
            raise ValueError(f"AGMS3DCNN: dilations must be >= 1 and non-empty, got {dilations}.")

        self.spatial_dims = spatial_dims
        self.deep_supervision = deep_supervision
        self.ds_heads = ds_heads if deep_supervision else 0
        self.features = features

        def res_block(c_in: int, c_out: int, stride: int) -> UnetResBlock:
            return UnetResBlock(
                spatial_dims, c_in, c_out, 3, stride, norm_name=_NORM, act_name=_ACT
            )

        def multiscale(c: int) -> MultiScaleBlock:
            return MultiScaleBlock(spatial_dims=spatial_dims, channels=c, dilations=dilations)

        def drop() -> nn.Module:
            if dropout == 0:
                return nn.Identity()
            if dropout_mode == "element":
                return nn.Dropout(dropout)
            return (nn.Dropout2d if spatial_dims == 2 else nn.Dropout3d)(dropout)

        # encoder: level 0 at full resolution, levels 1.. downsample by 2; last = bottleneck
        self.encoder = nn.ModuleList()
        c_prev = in_channels
        for level, c in enumerate(features):
            stage: list[nn.Module] = [res_block(c_prev, c, 1 if level == 0 else 2)]
            bottleneck = level == len(features) - 1
            if bottleneck or (multiscale_encoder and level > 0):
                stage.append(multiscale(c))
            self.encoder.append(nn.Sequential(*stage))
            c_prev = c
        self.bottleneck_dropout = drop()

        # decoder, coarsest first: up-convolution, gate, concat, residual block, dropout
        transp = Conv[Conv.CONVTRANS, spatial_dims]
        self.up = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.decoder_dropout = nn.ModuleList()
        for level in range(len(features) - 2, -1, -1):
            c_skip, c_below = features[level], features[level + 1]
            self.up.append(transp(c_below, c_skip, kernel_size=2, stride=2))
            self.gates.append(
                AttentionGate(spatial_dims=spatial_dims, skip_channels=c_skip, gate_channels=c_skip)
            )
            self.decoder.append(res_block(2 * c_skip, c_skip, 1))
            self.decoder_dropout.append(drop())
        self.out = UnetOutBlock(spatial_dims, features[0], out_channels)
        # heads on decoder levels 1..ds_heads (finer first); decoder index of level l is -(l+1)
        self.ds_out = nn.ModuleList(
            UnetOutBlock(spatial_dims, features[level], out_channels)
            for level in range(1, self.ds_heads + 1)
        )

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the deterministic part (encoder, multiscale blocks, bottleneck).

        Args:
            x: input (B, C_in, H, W, D).

        Returns:
            Encoder outputs, finest first: ``len(features)`` tensors, level ``l`` of shape
            (B, features[l], ~H/2^l, ~W/2^l, ~D/2^l); the last one is the bottleneck. Each is
            a plain batch-first tensor, so it can be repeated along the batch axis for MC
            sampling.
        """
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        return skips

    def forward_head(self, state: Sequence[torch.Tensor]) -> torch.Tensor:
        """Run the stochastic part (dropout, gated decoder, output heads) on encoder outputs.

        Args:
            state: the list returned by :meth:`forward_features`.

        Returns:
            Training mode with deep supervision: (B, 1 + ds_heads, C_out, H, W, D); otherwise
            (B, C_out, H, W, D), at the size of encoder level 0 (the input size).
        """
        *skips, x = state
        x = self.bottleneck_dropout(x)
        decoded: list[torch.Tensor] = []
        for i, skip in enumerate(reversed(skips)):
            g = _match_size(self.up[i](x), skip.shape[2:])
            x = torch.cat([self.gates[i](skip, g), g], dim=1)
            x = self.decoder_dropout[i](self.decoder[i](x))
            decoded.append(x)
        main = self.out(x)
        if not (self.training and self.deep_supervision):
            return main
        mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
        outs = [main]
        for head_index, head in enumerate(self.ds_out):
            level = head_index + 1
            feat = decoded[-(level + 1)]
            outs.append(F.interpolate(head(feat), size=main.shape[2:], mode=mode))
        return torch.stack(outs, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment ``x`` (B, C_in, H, W, D); see the class docstring for the output shapes."""
        if x.ndim != self.spatial_dims + 2:
            axes = "H, W, D" if self.spatial_dims == 3 else "H, W"
            raise ValueError(f"AGMS3DCNN: expected input (B, C, {axes}), got {tuple(x.shape)}.")
        return self.forward_head(self.forward_features(x))

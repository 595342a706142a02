"""3D DenseNet with multi-head self-attention over the deepest feature map (classification)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DenseNet3DAttention", "sinusoidal_position_encoding_3d"]

_POSITION_ENCODINGS = ("learned", "sinusoidal", "none")


def sinusoidal_position_encoding_3d(size: Sequence[int], dim: int) -> torch.Tensor:
    """Fixed 3D sine/cosine position encoding (Vaswani et al. 2017, one third per axis).

    Args:
        size: grid size (h, w, d).
        dim: embedding dimension; ``2 * (dim // 6)`` channels encode each axis, the remainder
            is zero.

    Returns:
        Tensor (h * w * d, dim), rows in ``torch.flatten`` order of the grid.

    Examples:
        >>> sinusoidal_position_encoding_3d((2, 3, 4), 12).shape
        torch.Size([24, 12])
    """
    per_axis = 2 * (dim // 6)
    if per_axis == 0:
        raise ValueError(f"sinusoidal position encoding needs dim >= 6, got {dim}.")
    freqs = torch.exp(-math.log(10000.0) * torch.arange(0, per_axis, 2) / per_axis)
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in size], indexing="ij")
    parts = []
    for grid in grids:
        angles = grid.reshape(-1, 1) * freqs  # (N, per_axis / 2)
        parts += [torch.sin(angles), torch.cos(angles)]
    enc = torch.cat(parts, dim=1)
    return F.pad(enc, (0, dim - enc.shape[1]))


class _DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 (bottleneck) then BN-ReLU-Conv3x3; output concatenated to the input."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        mid = bn_size * growth_rate
        self.layers = nn.Sequential(
            nn.BatchNorm3d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(in_channels, mid, 1, bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, growth_rate, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layers(x)], dim=1)


class _AttentionBlock(nn.Module):
    """Pre-norm transformer block (Vaswani et al. 2017) that also returns its attention weights.

    MONAI's ``TransformerBlock`` is not used: it always builds a cross-attention ``LayerNorm``
    that receives no gradient (an unused parameter breaks DDP without
    ``find_unused_parameters``) and keeps its attention map only detached.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map tokens (B, N, E) to (B, N, E) and attention weights (B, heads, N, N)."""
        h = self.norm1(x)
        out, weights = self.attn(h, h, h, need_weights=True, average_attn_weights=False)
        x = x + out
        return x + self.mlp(self.norm2(x)), weights


def _transition(in_channels: int, out_channels: int) -> nn.Sequential:
    """DenseNet transition: BN-ReLU-Conv1x1 (compression) then 2x average pooling."""
    return nn.Sequential(
        nn.BatchNorm3d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv3d(in_channels, out_channels, 1, bias=False),
        nn.AvgPool3d(2, ceil_mode=True),
    )


class DenseNet3DAttention(nn.Module):
    """3D DenseNet whose deepest feature map goes through multi-head self-attention.

    Dense blocks capture local texture; the transformer blocks on the deepest feature map
    relate every position to every other one (long-range context across the brain), as in the
    seed protocol's "3D DenseNet augmented with self-attention blocks". Stem (7^3 conv,
    stride 2, max pool), dense blocks with transitions (compression 0.5), a 1x1x1 projection
    to ``attention_dim``, a position encoding, ``attention_layers`` pre-norm transformer
    blocks (``torch.nn.MultiheadAttention``), mean pooling over positions, dropout and a linear
    classifier.

    The dense layers are written with ``torch.nn`` because MONAI's ``_DenseBlock`` /
    ``_Transition`` (``monai.networks.nets.densenet``) are private.

    References: Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
    (https://arxiv.org/abs/1608.06993); Vaswani et al., "Attention Is All You Need",
    NeurIPS 2017 (https://arxiv.org/abs/1706.03762); Wang et al., "Non-local Neural
    Networks", CVPR 2018.

    Args:
        spatial_dims: must be 3 (kept for a config signature like MONAI's networks).
        in_channels: input channels (1 for a T1 scan).
        num_classes: number of class logits.
        init_features: channels after the stem.
        growth_rate: channels each dense layer adds.
        block_layers: dense layers per block, e.g. ``(4, 8, 12)``; one transition between
            consecutive blocks.
        bn_size: bottleneck width factor (1x1 conv has ``bn_size * growth_rate`` channels).
        attention_dim: token dimension of the attention blocks (divisible by ``num_heads``).
        num_heads: attention heads.
        attention_layers: number of transformer blocks (>= 1).
        mlp_ratio: hidden size of the transformer MLP relative to ``attention_dim``.
        position_encoding: ``"learned"`` (a grid of ``pos_grid_size`` embeddings, trilinearly
            resized to the feature map), ``"sinusoidal"`` (fixed 3D sine/cosine) or ``"none"``.
        pos_grid_size: grid of the learned embedding (e.g. 6 for 96^3 inputs: 96/16).
        dropout: dropout before the classifier (also usable for MC dropout).
        attention_dropout: dropout inside the transformer blocks.
        return_attention: default of ``forward``'s ``return_attention``.

    Raises:
        ValueError: for an invalid argument.

    Examples:
        >>> net = DenseNet3DAttention(in_channels=1, num_classes=3, block_layers=(2, 2),
        ...                           growth_rate=8, init_features=16, attention_dim=32,
        ...                           num_heads=4)
        >>> logits, att = net(torch.randn(2, 1, 32, 32, 32), return_attention=True)
        >>> logits.shape, att.shape  # deepest map 4^3 = 64 positions
        (torch.Size([2, 3]), torch.Size([2, 1, 4, 64, 64]))
    """

    def __init__(
        self,
        *,
        spatial_dims: int = 3,
        in_channels: int,
        num_classes: int,
        init_features: int = 64,
        growth_rate: int = 32,
        block_layers: Sequence[int] = (4, 8, 12),
        bn_size: int = 4,
        attention_dim: int = 256,
        num_heads: int = 8,
        attention_layers: int = 1,
        mlp_ratio: float = 2.0,
        position_encoding: str = "learned",
        pos_grid_size: int | Sequence[int] = 6,
        dropout: float = 0.2,
        attention_dropout: float = 0.0,
        return_attention: bool = False,
    ) -> None:
        super().__init__()
        block_layers = tuple(int(n) for n in block_layers)
        if spatial_dims != 3:
            raise ValueError(f"DenseNet3DAttention: spatial_dims must be 3, got {spatial_dims}.")
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("init_features", init_features),
            ("growth_rate", growth_rate),
            ("bn_size", bn_size),
            ("attention_layers", attention_layers),
        ):
            if value < 1:
                raise ValueError(f"DenseNet3DAttention: {name} must be >= 1, got {value}.")
        if not block_layers or any(n < 1 for n in block_layers):
            raise ValueError(
                f"DenseNet3DAttention: block_layers must be non-empty and positive, got "
                f"{block_layers}."
            )
        if attention_dim < 1 or attention_dim % num_heads != 0:
            raise ValueError(
                f"DenseNet3DAttention: attention_dim ({attention_dim}) must be positive and "
                f"divisible by num_heads ({num_heads})."
            )
        if position_encoding not in _POSITION_ENCODINGS:
            raise ValueError(
                f"DenseNet3DAttention: position_encoding must be one of {_POSITION_ENCODINGS}, "
                f"got {position_encoding!r}."
            )
        if position_encoding == "sinusoidal" and attention_dim < 6:
            raise ValueError("DenseNet3DAttention: sinusoidal encoding needs attention_dim >= 6.")
        for name, p in (("dropout", dropout), ("attention_dropout", attention_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"DenseNet3DAttention: {name} must be in [0, 1), got {p}.")

        layers: list[nn.Module] = [
            nn.Conv3d(in_channels, init_features, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm3d(init_features),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(3, stride=2, padding=1),
        ]
        channels = init_features
        for i, n_layers in enumerate(block_layers):
            for _ in range(n_layers):
                layers.append(_DenseLayer(channels, growth_rate, bn_size))
                channels += growth_rate
            if i < len(block_layers) - 1:
                layers.append(_transition(channels, channels // 2))
                channels //= 2
        layers += [nn.BatchNorm3d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.proj = nn.Conv3d(channels, attention_dim, 1)

        self.position_encoding = position_encoding
        self.pos_embed: nn.Parameter | None = None
        if position_encoding == "learned":
            grid = (pos_grid_size,) * 3 if isinstance(pos_grid_size, int) else pos_grid_size
            self.pos_embed = nn.Parameter(torch.zeros(1, attention_dim, *[int(g) for g in grid]))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            _AttentionBlock(
                attention_dim, num_heads, int(attention_dim * mlp_ratio), attention_dropout
            )
            for _ in range(attention_layers)
        )
        self.norm = nn.LayerNorm(attention_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(attention_dim, num_classes)
        self.return_attention = return_attention
        self.attention_grid: tuple[int, ...] = ()

    def _position(self, grid: Sequence[int], like: torch.Tensor) -> torch.Tensor | None:
        """Position encoding (1, N, E) for a feature grid, or ``None``."""
        if self.pos_embed is not None:
            pos = self.pos_embed
            if tuple(pos.shape[2:]) != tuple(grid):
                pos = F.interpolate(pos, size=tuple(grid), mode="trilinear", align_corners=False)
            return pos.flatten(2).transpose(1, 2)
        if self.position_encoding == "sinusoidal":
            enc = sinusoidal_position_encoding_3d(grid, like.shape[-1])
            return enc.to(device=like.device, dtype=like.dtype).unsqueeze(0)
        return None

    def forward(
        self, x: torch.Tensor, return_attention: bool | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Classify ``x`` (B, C, H, W, D).

        Args:
            x: input volume batch (B, C, H, W, D).
            return_attention: also return the attention maps (default: the constructor's).

        Returns:
            Logits (B, num_classes), or ``(logits, attention)`` with attention weights
            (B, attention_layers, num_heads, N, N) after softmax (rows sum to 1);
            N = h * w * d positions of the deepest map, whose grid is kept in
            ``self.attention_grid`` to reshape a row back to 3D.
        """
        if x.ndim != 5:
            raise ValueError(
                f"DenseNet3DAttention: expected input (B, C, H, W, D), got {tuple(x.shape)}."
            )
        feat = self.proj(self.features(x))  # (B, E, h, w, d)
        self.attention_grid = tuple(feat.shape[2:])
        tokens = feat.flatten(2).transpose(1, 2)  # (B, N, E)
        pos = self._position(self.attention_grid, tokens)
        if pos is not None:
            tokens = tokens + pos
        maps = []
        for block in self.blocks:
            tokens, weights = block(tokens)
            maps.append(weights)
        pooled = self.norm(tokens).mean(dim=1)
        logits = self.classifier(self.dropout(pooled))
        want = self.return_attention if return_attention is None else return_attention
        return (logits, torch.stack(maps, dim=1)) if want else logits

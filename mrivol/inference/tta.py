"""Test-time augmentation by mirroring, as nnU-Net predicts: the mean over every flip combination.

nnU-Net v2 (``nnunetv2/inference/predict_from_raw_data.py``,
``_internal_maybe_mirror_and_predict``) runs each sliding window on the input and on its
mirror images along the allowed axes, flips each output back and averages the logits. The
brats_seg networks are trained with flips along all three axes, so all three are mirrored by
default (8 passes per window). MONAI's ``TestTimeAugmentation`` draws *random* invertible
transforms per sample and inverts the whole volume; mirroring is deterministic and exact at
the window level, which is why this is a small wrapper instead.

Examples:
    >>> import torch
    >>> net = torch.nn.Conv3d(4, 3, 3, padding=1)
    >>> FlipTTA(net, axes=(0, 1))(torch.randn(1, 4, 8, 8, 8)).shape
    torch.Size([1, 3, 8, 8, 8])
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch
from torch import nn

__all__ = ["FlipTTA", "flip_combinations"]


def flip_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of the spatial ``axes`` as tensor dims of (B, C, H, W, D), the empty one first.

    Examples:
        >>> flip_combinations((0, 1))
        [(), (2,), (3,), (2, 3)]
    """
    dims = [int(a) + 2 for a in axes]
    return [c for n in range(len(dims) + 1) for c in combinations(dims, n)]


class FlipTTA(nn.Module):
    """The mean of ``network``'s logits over the input mirrored along every subset of ``axes``.

    Args:
        network: (B, C_in, H, W, D) -> logits (B, C, H, W, D).
        axes: spatial axes (0, 1, 2 for H, W, D) that may be mirrored.

    Raises:
        ValueError: an axis outside 0..2, or repeated axes.
    """

    def __init__(self, network: nn.Module, *, axes: Sequence[int] = (0, 1, 2)) -> None:
        super().__init__()
        axes = tuple(int(a) for a in axes)
        if any(a not in (0, 1, 2) for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"FlipTTA: axes must be distinct values of 0, 1, 2, got {axes}")
        self.network = network
        self.axes = axes
        self.flips = flip_combinations(axes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean logits (B, C, H, W, D) over the ``2 ** len(axes)`` mirrored passes."""
        total = None
        for dims in self.flips:
            out = self.network(torch.flip(x, dims) if dims else x)
            out = torch.flip(out, dims) if dims else out
            total = out if total is None else total + out
        return total / len(self.flips)

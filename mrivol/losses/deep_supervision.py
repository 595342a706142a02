"""Deep-supervision loss for networks that stack their heads on dim 1 (MONAI's DynUNet style)."""

from __future__ import annotations

import torch
from monai.losses import DeepSupervisionLoss

__all__ = ["StackedDeepSupervisionLoss"]


class StackedDeepSupervisionLoss(DeepSupervisionLoss):
    """MONAI's ``DeepSupervisionLoss`` for outputs stacked as (B, 1 + heads, C, H, W, D).

    ``DynUNet`` and :class:`~mrivol.networks.AGMS3DCNN` return their full-resolution output and
    the upsampled deep-supervision heads stacked on dim 1 in training mode, and (B, C, H, W, D)
    in eval mode. This wrapper unbinds the stack into the list MONAI's loss expects (weights
    halve per level, ``weight_mode="exp"``) and passes plain outputs straight to ``loss``.

    Examples:
        >>> from monai.losses import DiceLoss
        >>> loss = StackedDeepSupervisionLoss(DiceLoss(sigmoid=True))
        >>> out, target = torch.randn(2, 3, 1, 8, 8, 8), torch.ones(2, 1, 8, 8, 8)
        >>> bool(loss(out, target) >= 0)
        True
    """

    def forward(  # type: ignore[override]
        self, input: torch.Tensor | list[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        if isinstance(input, torch.Tensor) and input.dim() == target.dim() + 1:
            input = list(torch.unbind(input, dim=1))
        return super().forward(input, target)

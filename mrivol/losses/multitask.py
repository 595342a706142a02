"""The joint loss of the multi-task U-Net: segmentation plus weighted cross-entropy.

Caruana, "Multitask Learning", Machine Learning 28, 1997: one weighted sum of the task losses
(:class:`mrivol.networks.MultiTaskUNet` outputs ``(seg, logits)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MultiTaskLoss"]


class MultiTaskLoss(nn.Module):
    """Weighted sum ``seg_weight * seg_loss(seg, mask) + cls_weight * CE(logits, class)``.

    Takes the network's ``(seg, logits)`` and a target ``(mask, class)`` (the bundle's
    ``prepare_batch`` builds it).

    Args:
        seg_loss: segmentation loss, e.g. MONAI ``DiceCELoss(sigmoid=True)``.
        seg_weight: weight of the segmentation term.
        cls_weight: weight of the classification term.
        class_weights: optional cross-entropy class weights (K,).
    """

    def __init__(
        self,
        *,
        seg_loss: nn.Module,
        seg_weight: float = 1.0,
        cls_weight: float = 0.5,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.seg_loss = seg_loss
        self.ce = nn.CrossEntropyLoss(weight=class_weights)
        self.seg_weight, self.cls_weight = float(seg_weight), float(cls_weight)

    def forward(self, pred: Sequence[torch.Tensor], target: Sequence[torch.Tensor]) -> torch.Tensor:
        seg, logits = pred
        mask, label = target
        ce = self.ce(logits, torch.as_tensor(label, device=logits.device).long().reshape(-1))
        return self.seg_weight * self.seg_loss(seg, mask) + self.cls_weight * ce

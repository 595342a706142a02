"""A segmentation loss plus a weighted boundary term (MONAI's ``HausdorffDTLoss``).

Region losses (Dice, cross-entropy) hardly see a boundary that is off by a voxel or two, which
is what HD95 measures. Karimi & Salcudean's distance-transform Hausdorff loss ("Reducing the
Hausdorff Distance in Medical Image Segmentation with Convolutional Neural Networks", IEEE TMI
39, 2020; MONAI's ``HausdorffDTLoss``) penalises errors by their squared distance to the
boundaries. Its distance transforms run on the CPU (scipy) unless cuCIM is installed, so the
term is opt-in (``boundary_loss_weight``).
"""

from __future__ import annotations

import torch
from monai.losses import HausdorffDTLoss

__all__ = ["BoundaryCompoundLoss"]


class BoundaryCompoundLoss(torch.nn.Module):
    """``loss(pred, target) + boundary_weight * HausdorffDTLoss(pred, target)``.

    Args:
        loss: the region loss (e.g. MONAI's ``DiceCELoss(sigmoid=True)``).
        boundary_weight: weight of the boundary term; ``0`` computes no distance transform.
        sigmoid: whether ``pred`` holds logits of independent (sigmoid) channels, as brats_seg's
            TC / WT / ET outputs; ``False``: softmax over the channels.
        alpha: distance exponent of the Hausdorff term (2 in the paper).

    Raises:
        ValueError: a negative ``boundary_weight``.

    Examples:
        >>> from monai.losses import DiceCELoss
        >>> loss = BoundaryCompoundLoss(loss=DiceCELoss(sigmoid=True), boundary_weight=0.1)
        >>> pred = torch.zeros(1, 3, 8, 8, 8)
        >>> float(loss(pred, torch.zeros(1, 3, 8, 8, 8))) > 0
        True
    """

    def __init__(
        self,
        *,
        loss: torch.nn.Module,
        boundary_weight: float = 0.0,
        sigmoid: bool = True,
        alpha: float = 2.0,
    ) -> None:
        super().__init__()
        if boundary_weight < 0:
            raise ValueError(f"boundary_loss_weight must be >= 0, got {boundary_weight}")
        self.loss = loss
        self.boundary_weight = float(boundary_weight)
        self.boundary = HausdorffDTLoss(
            alpha=alpha, include_background=True, sigmoid=sigmoid, softmax=not sigmoid
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W, D)`` logits and targets -> the scalar loss."""
        value = self.loss(pred, target)
        if self.boundary_weight:
            value = value + self.boundary_weight * self.boundary(pred.float(), target.float())
        return value

"""The multi-task loss is the weighted sum of its two terms."""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss

from mrivol.losses import MultiTaskLoss


def test_loss_is_weighted_sum():
    seg = torch.randn(2, 3, 8, 8, 8)
    logits = torch.randn(2, 2)
    mask = (torch.rand(2, 3, 8, 8, 8) > 0.5).float()
    label = torch.tensor([0, 1])
    dice = DiceCELoss(sigmoid=True)
    loss = MultiTaskLoss(seg_loss=dice, seg_weight=2.0, cls_weight=0.5)(
        (seg, logits), (mask, label)
    )
    expected = 2.0 * dice(seg, mask) + 0.5 * torch.nn.functional.cross_entropy(logits, label)
    assert torch.allclose(loss, expected)

"""Batches and metric inputs of the multi-task (segmentation + classification) bundle.

MONAI's ``SupervisedTrainer`` / ``SupervisedEvaluator`` pass ``prepare_batch``'s target to the
loss and put the network output under ``pred``; for :class:`mrivol.networks.MultiTaskUNet`
both are pairs: ``pred = (seg_logits, class_logits)`` and ``label = (region_masks, class)``.
These functions build the pair and split it again for MONAI's ``MeanDice`` and the
classification metrics (the engines run with ``decollate=False``, so everything stays batched).

Examples:
    >>> image, (mask, cls) = prepare_multitask_batch(batch, "cpu")  # doctest: +SKIP
    >>> MeanDice(output_transform=SegRegionOutput(channel=1))  # WT Dice  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["SegRegionOutput", "class_output", "prepare_multitask_batch", "seg_region"]


def prepare_multitask_batch(
    batchdata: Mapping[str, Any],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    *,
    class_key: str = "class",
    **kwargs: Any,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """``(image (B, C, H, W, D), (masks (B, R, H, W, D), class (B,)))`` on ``device``."""

    def move(x: Any) -> torch.Tensor:
        return torch.as_tensor(x).to(device=device, non_blocking=non_blocking, **kwargs)

    return move(batchdata["image"]), (move(batchdata["label"]), move(batchdata[class_key]).long())


def seg_region(
    output: Mapping[str, Any], channel: int | None = None, *, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binarised sigmoid segmentation and its mask, one region ``channel`` or all (for Dice)."""
    seg = (torch.sigmoid(output["pred"][0].float()) > threshold).float()
    mask = output["label"][0]
    if channel is not None:
        seg, mask = seg[:, channel : channel + 1], mask[:, channel : channel + 1]
    return seg, mask


class SegRegionOutput:
    """A metric's ``output_transform``: :func:`seg_region` of one region, or all of them.

    A named callable, so a bundle config writes ``_target_: ...SegRegionOutput`` with
    ``channel: 1`` instead of a lambda in a ``$`` string.

    Args:
        channel: region channel (0 TC, 1 WT, 2 ET for brats_multitask); ``None``: all regions.
        threshold: sigmoid probability above which a voxel is in the region.
    """

    def __init__(self, *, channel: int | None = None, threshold: float = 0.5) -> None:
        self.channel, self.threshold = channel, float(threshold)

    def __call__(self, output: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return seg_region(output, self.channel, threshold=self.threshold)


def class_output(output: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(class_logits (B, K), class (B,))`` for accuracy-type metrics."""
    return output["pred"][1].float(), output["label"][1]

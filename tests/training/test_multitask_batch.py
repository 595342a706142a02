"""The multi-task batch: (seg, logits) outputs split again for region Dice and class metrics."""

from __future__ import annotations

import pytest
import torch

from mrivol.training import SegRegionOutput, class_output, prepare_multitask_batch, seg_region


def _output():
    seg = torch.tensor([-2.0, 2.0, 0.5]).reshape(1, 3, 1, 1, 1).repeat(2, 1, 2, 2, 2)
    mask = torch.ones(2, 3, 2, 2, 2)
    return {"pred": (seg, torch.randn(2, 4)), "label": (mask, torch.tensor([1, 3]))}


@pytest.mark.parametrize("channel", [None, 0, 1, 2], ids=["all", "tc", "wt", "et"])
def test_region_output_is_the_thresholded_channel(channel):
    seg, mask = SegRegionOutput(channel=channel)(_output())
    expected_seg, expected_mask = seg_region(_output(), channel)
    assert torch.equal(seg, expected_seg) and torch.equal(mask, expected_mask)
    if channel is not None:
        assert seg.shape == (2, 1, 2, 2, 2)
        assert bool(seg.max()) == (channel != 0)  # sigmoid(-2) < 0.5 < sigmoid(0.5)


def test_threshold_is_applied_to_the_probability():
    seg, _ = SegRegionOutput(channel=2, threshold=0.7)(_output())  # sigmoid(0.5) = 0.62
    assert seg.sum() == 0


def test_batches_and_class_outputs_round_trip():
    batch = {"image": torch.zeros(2, 4, 2, 2, 2), "label": torch.ones(2, 3, 2, 2, 2),
             "class": torch.tensor([0, 2])}  # fmt: skip
    image, (mask, cls) = prepare_multitask_batch(batch, "cpu")
    assert image.shape == (2, 4, 2, 2, 2) and cls.dtype == torch.int64
    logits, labels = class_output(_output())
    assert logits.shape == (2, 4) and labels.tolist() == [1, 3]

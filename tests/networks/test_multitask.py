"""Multi-task U-Net: output shapes and argument checks."""

from __future__ import annotations

import pytest
import torch

from mrivol.networks.multitask import MultiTaskUNet

SMALL = {"in_channels": 2, "seg_channels": 3, "num_classes": 2, "channels": (4, 8, 16)}


@pytest.mark.parametrize("size", [16, 32], ids=["16", "32"])
def test_shapes(size):
    seg, cls = MultiTaskUNet(**SMALL)(torch.randn(2, 2, size, size, size))
    assert seg.shape == (2, 3, size, size, size) and cls.shape == (2, 2)


@pytest.mark.parametrize(
    "kwargs",
    [{"channels": (8,)}, {"num_classes": 1}, {"in_channels": 0}],
    ids=["one-level", "k1", "c0"],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError, match="MultiTaskUNet"):
        MultiTaskUNet(**{**SMALL, **kwargs})

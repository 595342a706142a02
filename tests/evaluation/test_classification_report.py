"""Grad-CAM++ of a classifier: a map on the input grid that leaves the network as it was."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mrivol.evaluation.classification_report import gradcam_pp


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        return self.head(self.features(x))


def test_map_on_the_input_grid_and_no_hooks_left_on_the_network():
    torch.manual_seed(0)
    net = _Net().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cam = gradcam_pp(net, torch.rand(1, 1, 8, 10, 6), target_layer="features")
    assert cam.shape == (8, 10, 6) and cam.dtype == np.float32
    assert cam.min() >= 0.0 and cam.max() <= 1.0
    assert net.training  # mode untouched
    for module in net.modules():  # MONAI's hooks went on a copy
        assert not module._forward_hooks and not module._backward_hooks
    assert net.features[1].inplace  # MONAI turns inplace off on the layers it hooks
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())

"""MONAI's DynUNet from a plan: topology, deep-supervision heads, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.nets import DynUNet

from mrivol.networks import build_dynunet
from mrivol.planning import plan_from_fingerprint, write_plans

SHALLOW = {"strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "kernel_sizes": [[3, 3, 3]] * 3,
           "filters": [4, 8, 16], "patch_size": [16, 16, 16]}  # fmt: skip


def _fingerprint(spacings: list, shapes: list) -> dict:
    return {"spacings": spacings, "shapes_after_crop": shapes}


def test_dynunet_from_anisotropic_plan_runs(tmp_path: Path) -> None:
    fp = _fingerprint([[0.5, 0.5, 3.0]] * 3, [[64, 64, 12]] * 3)
    plans = plan_from_fingerprint(fp, base_features=4, max_features=32)
    path = write_plans(plans, tmp_path / "plans.json")
    net = build_dynunet(path, in_channels=4, out_channels=3, dropout=0.1, deep_supr_num=2)
    assert isinstance(net, DynUNet)
    patch = plans["patch_size"]
    x = torch.randn(2, 4, *patch)
    assert net.train()(x).shape == (2, 3, 3, *patch)
    with torch.no_grad():
        assert net.eval()(x).shape == (2, 3, *patch)
    first_conv = net.input_block.conv1.conv
    assert tuple(first_conv.kernel_size) == tuple(plans["kernel_sizes"][0])
    assert isinstance(net.input_block.norm1, torch.nn.InstanceNorm3d)


def test_build_dynunet_rejects_too_many_heads() -> None:
    with pytest.raises(ValueError, match="deep_supr_num"):
        build_dynunet(SHALLOW, in_channels=1, out_channels=2, deep_supr_num=2)


@pytest.mark.parametrize(("stages", "heads"), [(3, 1), (4, 2), (6, 2)], ids=["3", "4", "6"])
def test_default_heads_fit_the_plan(stages: int, heads: int) -> None:
    plans = {**SHALLOW, "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1),
             "kernel_sizes": [[3, 3, 3]] * stages, "filters": [4 * 2**i for i in range(stages)],
             "patch_size": [2 ** (stages + 1)] * 3}  # fmt: skip
    net = build_dynunet(plans, in_channels=1, out_channels=2)
    x = torch.randn(1, 1, *plans["patch_size"])
    assert net.train()(x).shape[1] == 1 + heads

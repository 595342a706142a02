"""Tests for mrivol.inference.mc_dropout."""

from __future__ import annotations

import pytest
import torch
from monai.networks.layers import DropPath
from torch import nn

from mrivol.inference import enable_mc_dropout, mc_dropout, mc_predict
from mrivol.networks import AGMS3DCNN


def _bn_net(p: float = 0.5) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.Dropout3d(p),
        nn.Conv3d(4, 2, 1),
    )  # fmt: skip


def _agms() -> AGMS3DCNN:
    return AGMS3DCNN(in_channels=1, out_channels=2, features=(8, 16, 32), ds_heads=1, dropout=0.2)


def test_samples_differ_and_eval_is_deterministic() -> None:
    net, x = _agms(), torch.randn(1, 1, 16, 16, 16)
    with mc_dropout(net):
        a, b = net(x), net(x)
    assert not torch.allclose(a, b)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_batch_norm_statistics_untouched_and_no_grad() -> None:
    net = _bn_net()
    net.train()(torch.randn(2, 1, 8, 8, 8))  # make the running stats non-trivial
    bn = net[1]
    before = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    with mc_dropout(net):
        assert not bn.training and net[3].training
        out = net(torch.randn(3, 1, 8, 8, 8) * 5 + 3)
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert int(bn.num_batches_tracked) == before[2]
    assert not out.requires_grad and all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("start_training", [True, False], ids=["from-train", "from-eval"])
def test_modes_restored(start_training: bool) -> None:
    net = _agms().train(start_training)
    net.gates[0].train(not start_training)  # a mixed state must come back exactly
    modes = {name: m.training for name, m in net.named_modules()}
    with mc_dropout(net):
        assert not net.training
    assert {name: m.training for name, m in net.named_modules()} == modes
    handle = enable_mc_dropout(net)
    assert handle.num_dropout_layers == 3 and net.bottleneck_dropout.training
    handle.restore()
    assert {name: m.training for name, m in net.named_modules()} == modes


def test_modes_restored_after_exception() -> None:
    net = _bn_net().train()
    with pytest.raises(RuntimeError), mc_dropout(net):
        raise RuntimeError("boom")
    assert all(m.training for m in net.modules())


@pytest.mark.parametrize(
    "net",
    [
        nn.Sequential(nn.Conv3d(1, 2, 1), nn.BatchNorm3d(2)),
        nn.Sequential(nn.Conv3d(1, 2, 1), nn.Dropout(0.0)),
        AGMS3DCNN(in_channels=1, out_channels=2, features=(8, 16, 32), ds_heads=1, dropout=0.0),
    ],
    ids=["no-dropout", "zero-p", "agms-dropout-0"],
)
def test_model_without_effective_dropout_raises(net: nn.Module) -> None:
    with pytest.raises(ValueError, match="no dropout layer"):
        enable_mc_dropout(net)
    with pytest.raises(ValueError, match="no dropout layer"), mc_dropout(net):
        pass


def test_drop_path_counts_as_dropout() -> None:
    net = nn.Sequential(nn.Linear(4, 4), DropPath(0.5))
    with mc_dropout(net):
        assert net[1].training
        outs = torch.stack([net(torch.ones(8, 4)) for _ in range(5)])
    assert (outs == 0).any() and (outs != 0).any()


@pytest.mark.parametrize("batch_size", [None, 1, 3], ids=["all-at-once", "bs1", "bs3"])
def test_mc_predict_shape_and_spread(batch_size: int | None) -> None:
    net = _agms().train()
    x = torch.randn(2, 1, 16, 16, 16)
    out = mc_predict(net, x, samples=4, batch_size=batch_size)
    assert out.shape == (4, 2, 2, 16, 16, 16)  # (T, B, C, H, W, D), main output only
    assert not out.requires_grad
    assert out.std(dim=0).mean() > 0  # the passes differ
    assert not torch.allclose(out[:, 0], out[:, 1])  # batch items are not mixed up
    assert net.training  # mode restored


def test_mc_predict_sample_order() -> None:
    """Rows are sample-major: with a near-zero dropout, sample t of item b equals item b."""
    net = nn.Sequential(nn.Identity(), nn.Dropout(1e-9))
    x = torch.arange(3.0).reshape(3, 1)
    out = mc_predict(net, x, samples=2, batch_size=4)
    assert torch.allclose(out, x.expand(2, 3, 1))


@pytest.mark.parametrize(
    "kwargs", [{"samples": 0}, {"samples": 2, "batch_size": 0}], ids=["samples", "batch-size"]
)
def test_mc_predict_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="mc_predict"):
        mc_predict(_bn_net(), torch.randn(1, 1, 4, 4, 4), **kwargs)

"""Tests for mrivol.networks.DenseNet3DAttention."""

from __future__ import annotations

import math

import pytest
import torch

from mrivol.inference import mc_predict
from mrivol.networks import DenseNet3DAttention, sinusoidal_position_encoding_3d

TINY = {
    "block_layers": (2, 2),
    "growth_rate": 8,
    "init_features": 16,
    "attention_dim": 24,
    "num_heads": 4,
}


def _net(**kwargs) -> DenseNet3DAttention:
    return DenseNet3DAttention(**({"in_channels": 1, "num_classes": 3} | TINY | kwargs))


@pytest.mark.parametrize("in_channels", [1, 4], ids=["1ch", "4ch"])
@pytest.mark.parametrize("encoding", ["learned", "sinusoidal", "none"])
def test_logits_and_attention(in_channels: int, encoding: str) -> None:
    net = _net(in_channels=in_channels, position_encoding=encoding, attention_layers=2)
    logits, att = net(torch.randn(2, in_channels, 33, 35, 31), return_attention=True)
    assert logits.shape == (2, 3)
    # 33x35x31 -> stem /4 -> 9x9x8 -> transition -> 5x5x4 = 100 positions
    assert net.attention_grid == (5, 5, 4)
    n = math.prod(net.attention_grid)
    assert att.shape == (2, 2, 4, n, n)  # (B, layers, heads, N, N)
    assert att.min() >= 0 and att.max() <= 1
    assert torch.allclose(att.sum(dim=-1), torch.ones(2, 2, 4, n))


def test_return_attention_default_from_constructor() -> None:
    x = torch.randn(1, 1, 32, 32, 32)
    assert isinstance(_net(return_attention=True)(x), tuple)
    assert isinstance(_net()(x), torch.Tensor)


def test_default_configuration_96() -> None:
    net = DenseNet3DAttention(in_channels=1, num_classes=2).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 96, 96, 96)).shape == (1, 2)
    assert net.attention_grid == (6, 6, 6)  # 96 / 16, matches the learned grid size


def test_gradients_reach_every_parameter() -> None:
    net = _net(dropout=0.1, attention_dropout=0.1).train()
    logits = net(torch.randn(2, 1, 24, 28, 20))
    (logits * torch.randn_like(logits)).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_mc_dropout_samples_differ() -> None:
    out = mc_predict(_net(dropout=0.5), torch.randn(2, 1, 32, 32, 32), samples=3)
    assert out.shape == (3, 2, 3) and out.std(dim=0).mean() > 0


def test_sinusoidal_encoding_distinguishes_positions() -> None:
    enc = sinusoidal_position_encoding_3d((3, 4, 5), 20)
    assert enc.shape == (60, 20)
    assert enc.abs().max() <= 1
    assert torch.cdist(enc, enc).add(torch.eye(60)).min() > 0  # all rows distinct
    assert torch.all(enc[:, 18:] == 0)  # 3 * 2 * (20 // 6) = 18 used channels


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 2},
        {"num_classes": 0},
        {"growth_rate": 0},
        {"block_layers": ()},
        {"block_layers": (2, 0)},
        {"attention_dim": 30, "num_heads": 4},
        {"position_encoding": "rotary"},
        {"dropout": 1.0},
        {"attention_dropout": -0.5},
    ],
    ids=[
        "2d",
        "no-classes",
        "growth",
        "no-blocks",
        "empty-block",
        "heads-divisor",
        "encoding",
        "dropout",
        "attention-dropout",
    ],
)
def test_invalid_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="DenseNet3DAttention"):
        _net(**kwargs)

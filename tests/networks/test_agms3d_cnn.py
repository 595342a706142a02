"""Tests for mrivol.networks.AGMS3DCNN."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DeepSupervisionLoss, DiceLoss

from mrivol.networks import AGMS3DCNN

SMALL = (8, 16, 32, 64)


@pytest.mark.parametrize("in_channels", [1, 4], ids=["1ch", "4ch"])
@pytest.mark.parametrize("size", [(33, 35, 31), (17, 20, 9)], ids=["odd", "tiny-mixed"])
def test_output_shapes_train_and_eval(in_channels: int, size: tuple[int, ...]) -> None:
    net = AGMS3DCNN(in_channels=in_channels, out_channels=3, features=SMALL, ds_heads=2)
    x = torch.randn(2, in_channels, *size)
    assert net.train()(x).shape == (2, 3, 3, *size)  # main + 2 heads stacked on dim 1
    with torch.no_grad():
        assert net.eval()(x).shape == (2, 3, *size)


def test_default_features_odd_patch() -> None:
    net = AGMS3DCNN(in_channels=4, out_channels=3)
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 4, 33, 35, 31)).shape == (1, 3, 33, 35, 31)


@pytest.mark.parametrize(
    ("deep_supervision", "ds_heads", "expected"),
    [(True, 1, (1, 2, 2, 16, 16, 16)), (False, 2, (1, 2, 16, 16, 16))],
    ids=["one-head", "no-deep-supervision"],
)
def test_deep_supervision_options(deep_supervision: bool, ds_heads: int, expected: tuple) -> None:
    net = AGMS3DCNN(
        in_channels=1,
        out_channels=2,
        features=SMALL,
        deep_supervision=deep_supervision,
        ds_heads=ds_heads,
    )
    assert net.train()(torch.randn(1, 1, 16, 16, 16)).shape == expected


def test_2d() -> None:
    net = AGMS3DCNN(spatial_dims=2, in_channels=1, out_channels=2, features=SMALL)
    assert net.train()(torch.randn(2, 1, 33, 30)).shape == (2, 3, 2, 33, 30)


def test_gradients_reach_every_parameter() -> None:
    net = AGMS3DCNN(in_channels=4, out_channels=3, features=SMALL).train()
    out = net(torch.randn(2, 4, 17, 20, 9))
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_deep_supervision_loss_weights() -> None:
    net = AGMS3DCNN(in_channels=1, out_channels=2, features=SMALL).train()
    out = net(torch.randn(2, 1, 16, 16, 16))
    target = torch.randint(0, 2, (2, 1, 16, 16, 16))
    dice = DiceLoss(to_onehot_y=True, softmax=True)
    levels = torch.unbind(out, dim=1)
    assert len(levels) == 3 and all(t.shape == (2, 2, 16, 16, 16) for t in levels)
    expected = sum(w * dice(o, target) for w, o in zip((1.0, 0.5, 0.25), levels, strict=True))
    assert torch.allclose(DeepSupervisionLoss(dice, weight_mode="exp")(levels, target), expected)
    main_only = DeepSupervisionLoss(dice, weights=[1.0, 0.0, 0.0])(levels, target)
    assert torch.allclose(main_only, dice(levels[0], target))
    assert not torch.allclose(main_only, expected)


def test_heads_are_coarser_than_main_output() -> None:
    """Head k is upsampled from 1/2^k resolution: piecewise smooth, not equal to the main output."""
    net = AGMS3DCNN(in_channels=1, out_channels=2, features=SMALL).train()
    out = net(torch.randn(1, 1, 16, 16, 16))
    assert not torch.allclose(out[:, 0], out[:, 1]) and not torch.allclose(out[:, 1], out[:, 2])


def test_features_then_head_equals_forward_in_eval() -> None:
    net = AGMS3DCNN(in_channels=2, out_channels=2, features=SMALL).eval()
    x = torch.randn(1, 2, 17, 20, 9)
    with torch.no_grad():
        state = net.forward_features(x)
        assert len(state) == len(SMALL) and state[-1].shape[1] == SMALL[-1]
        assert torch.equal(net.forward_head(state), net(x))


def test_dropout_only_after_encoder() -> None:
    """The deterministic/stochastic split: no dropout inside the encoder."""
    net = AGMS3DCNN(in_channels=1, out_channels=2, features=SMALL, dropout=0.2)
    drop_types = (torch.nn.Dropout, torch.nn.Dropout3d)
    assert not any(isinstance(m, drop_types) for m in net.encoder.modules())
    assert sum(isinstance(m, drop_types) for m in net.modules()) == len(SMALL)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 4},
        {"in_channels": 0},
        {"features": (8, 16)},
        {"features": (8, 0, 16)},
        {"dropout": 1.0},
        {"dropout": -0.1},
        {"dropout_mode": "gaussian"},
        {"ds_heads": 0},
        {"ds_heads": 3},
        {"dilations": ()},
        {"dilations": (1, 0)},
    ],
    ids=[
        "spatial-dims",
        "in-channels",
        "two-levels",
        "zero-features",
        "dropout-one",
        "dropout-negative",
        "dropout-mode",
        "no-heads",
        "too-many-heads",
        "no-dilations",
        "zero-dilation",
    ],
)
def test_invalid_arguments_raise(kwargs: dict) -> None:
    args = {"in_channels": 1, "out_channels": 2, "features": SMALL} | kwargs
    with pytest.raises(ValueError, match="AGMS3DCNN"):
        AGMS3DCNN(**args)


def test_wrong_input_rank_raises() -> None:
    net = AGMS3DCNN(in_channels=1, out_channels=2, features=SMALL)
    with pytest.raises(ValueError, match="expected input"):
        net(torch.randn(1, 1, 16, 16))

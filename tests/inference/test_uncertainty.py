"""MC-dropout predictor: prefix reuse, batching, entropy / MI invariants, output splitting."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.nets import UNet
from torch import nn

from mrivol.inference.uncertainty import McDropoutPredictor, deterministic_prefix, first_dropout
from mrivol.metrics.uncertainty import binary_entropy, predictive_uncertainty
from mrivol.networks import AGMS3DCNN


def _sequential() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Dropout3d(0.3), nn.Conv3d(4, 3, 1)
    )


def _agms() -> AGMS3DCNN:
    return AGMS3DCNN(in_channels=2, out_channels=3, features=(4, 8, 8), deep_supervision=False)


def _unet() -> UNet:
    return UNet(
        spatial_dims=3,
        in_channels=2,
        out_channels=3,
        channels=(4, 8),
        strides=(2,),
        num_res_units=1,
        dropout=0.2,
    )


NETWORKS = {
    "sequential": (_sequential, "sequential_prefix"),
    "agms3dcnn": (_agms, "forward_features"),
    "monai_unet": (_unet, "none"),
}


class _Counting(nn.Module):
    """Counts calls of the wrapped module."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, x):
        self.calls += 1
        return self.module(x)


@pytest.mark.parametrize("name", list(NETWORKS), ids=list(NETWORKS))
def test_strategy_per_network(name):
    build, strategy = NETWORKS[name]
    assert McDropoutPredictor(build(), samples=4).strategy == strategy


def test_monai_unet_first_dropout_is_in_the_first_unit():
    # documents why nothing is reused for the default network
    assert first_dropout(_unet()).startswith("model.0.")
    assert deterministic_prefix(_unet()) is None


@pytest.mark.parametrize("name", ["sequential", "agms3dcnn"], ids=["sequential", "agms3dcnn"])
@pytest.mark.parametrize("batch_size", [None, 4], ids=["all_rows", "chunks_of_4"])
def test_prefix_reuse_equals_naive_repeated_passes(name, batch_size):
    """With no dropout before the split, reusing the prefix draws the same masks as T full
    passes on the repeated batch: the statistics must be identical for a fixed seed."""
    net = NETWORKS[name][0]().eval()
    x, t = torch.randn(2, 2, 8, 8, 8), 4
    torch.manual_seed(0)
    out = McDropoutPredictor(net, samples=t, batch_size=batch_size)(x)
    torch.manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            m.train(isinstance(m, (nn.Dropout, nn.Dropout3d)))
        rows = x.repeat(t, 1, 1, 1, 1)
        chunk = rows.shape[0] if batch_size is None else batch_size
        logits = torch.cat([net(rows[i : i + chunk]) for i in range(0, rows.shape[0], chunk)])
    probs = torch.sigmoid(logits).reshape(t, 2, 3, 8, 8, 8)  # sample-major rows
    expected = torch.cat([probs.mean(0), binary_entropy(probs).mean(0)], dim=1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_prefix_runs_once_for_all_samples():
    net = _sequential()
    net[0] = _Counting(net[0])
    net[3] = _Counting(net[3])
    McDropoutPredictor(net, samples=8, batch_size=2)(torch.randn(1, 2, 6, 6, 6))
    assert (net[0].calls, net[3].calls) == (1, 4)


def test_single_sample_is_the_deterministic_sigmoid():
    net = _unet()
    x = torch.randn(1, 2, 8, 8, 8)
    out = McDropoutPredictor(net, samples=1)(x)
    torch.testing.assert_close(out, torch.sigmoid(net.eval()(x)))
    assert not any(m.training for m in net.modules())


def test_samples_differ_and_modes_are_restored():
    net = _unet().train()
    out = McDropoutPredictor(net, samples=6)(torch.randn(1, 2, 8, 8, 8))
    entropy, mi = predictive_uncertainty(out[:, :3], out[:, 3:])
    assert mi.max() > 0  # the samples disagree somewhere
    assert all(m.training for m in net.modules())  # back in train mode


def test_refuses_mc_without_dropout():
    net = nn.Sequential(nn.Conv3d(2, 3, 1))
    with pytest.raises(ValueError, match="no dropout"):
        McDropoutPredictor(net, samples=4)
    assert McDropoutPredictor(net, samples=1).samples == 1


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.5, math.log(2)), (0.0, 0.0), (1.0, 0.0), (0.1, 0.3250829733914482)],
    ids=["half", "zero", "one", "tenth"],
)
def test_binary_entropy_known_values(p, expected):
    assert float(binary_entropy(torch.tensor(p))) == pytest.approx(expected, abs=1e-5)


def test_mutual_information_of_confident_disagreeing_samples_is_ln2():
    probs = torch.tensor([0.0, 1.0]).reshape(2, 1, 1, 1, 1, 1)  # two samples, certain, opposite
    entropy, mi = predictive_uncertainty(probs.mean(0), binary_entropy(probs).mean(0))
    assert float(entropy) == pytest.approx(math.log(2), abs=1e-5)
    assert float(mi) == pytest.approx(math.log(2), abs=1e-4)

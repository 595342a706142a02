"""BratsHD95Metric: MONAI cumulative metric, MetaTensor spacing, empty rules, ignite handler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, decollate_batch, list_data_collate

from mrivol.metrics import BratsHD95Metric, hd95_mm
from tests.metrics.conftest import random_blob_mask


def _batch(seed: int, b: int = 2, c: int = 3, shape=(20, 20, 16)) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(seed)
    y = np.stack([[random_blob_mask(rng, shape) for _ in range(c)] for _ in range(b)])
    p = np.stack([[random_blob_mask(rng, shape) for _ in range(c)] for _ in range(b)])
    p[0, 1] = False  # empty prediction
    y[1, 2] = False  # empty truth
    p[1, 0], y[1, 0] = False, False  # both empty
    return torch.as_tensor(p, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)


def _expected(p: torch.Tensor, y: torch.Tensor, spacings, max_hd95: float) -> np.ndarray:
    return np.array(
        [
            [
                hd95_mm(p[b, c].numpy(), y[b, c].numpy(), spacing=spacings[b], max_hd95=max_hd95)
                for c in range(y.shape[1])
            ]
            for b in range(y.shape[0])
        ]
    )


def _batched_meta(t: torch.Tensor, affines: torch.Tensor) -> MetaTensor:
    """Collate per-sample MetaTensors (as a DataLoader does) into a batch MetaTensor."""
    return list_data_collate([MetaTensor(t[i], affine=affines[i]) for i in range(t.shape[0])])


@pytest.mark.parametrize("seed", [0, 1], ids=["seed0", "seed1"])
def test_plain_tensor_with_spacing_matches_per_case_function(seed):
    p, y = _batch(seed)
    spacing = (1.0, 1.2, 2.5)
    metric = BratsHD95Metric(spacing=spacing, max_hd95=374.0)
    got = metric(p, y).numpy()
    np.testing.assert_allclose(got, _expected(p, y, [spacing] * 2, 374.0), atol=1e-4)
    assert got[0, 1] == pytest.approx(374.0)  # empty prediction
    assert got[1, 2] == pytest.approx(374.0)  # empty truth
    assert got[1, 0] == 0.0  # both empty


def test_spacing_is_read_from_metatensor_pixdim_per_sample():
    p, y = _batch(2)
    spacings = [(1.0, 1.0, 3.0), (0.5, 2.0, 1.0)]
    y_meta = _batched_meta(y, torch.stack([torch.diag(torch.tensor([*s, 1.0])) for s in spacings]))
    assert y_meta.is_batch
    metric = BratsHD95Metric(spacing=(9.0, 9.0, 9.0))  # ignored for a MetaTensor
    got = metric(p, y_meta).numpy()
    np.testing.assert_allclose(got, _expected(p, y, spacings, 373.1287), atol=1e-4)


def test_decollated_list_input_and_aggregate_like_monai():
    p, y = _batch(3)
    spacings = [(1.0, 1.0, 2.0), (1.0, 1.0, 2.0)]
    y_meta = _batched_meta(y, torch.stack([torch.diag(torch.tensor([*s, 1.0])) for s in spacings]))
    metric = BratsHD95Metric(reduction="mean")
    metric(decollate_batch(p), decollate_batch(y_meta))  # what IgniteMetricHandler passes
    metric(p[:1], _batched_meta(y[:1], torch.diag(torch.tensor([1.0, 1.0, 2.0, 1.0]))[None]))
    buffer = metric.get_buffer()
    assert tuple(buffer.shape) == (3, 3)
    expected = _expected(p, y, spacings, 373.1287)
    np.testing.assert_allclose(buffer[:2].numpy(), expected, atol=1e-4)
    assert float(metric.aggregate()) == pytest.approx(buffer.mean().item(), rel=1e-6)
    per_channel = metric.aggregate(reduction="mean_batch")
    np.testing.assert_allclose(per_channel.numpy(), buffer.mean(0).numpy(), rtol=1e-6)
    metric.reset()
    with pytest.raises(ValueError, match="no values"):
        metric.aggregate()


@pytest.mark.parametrize(("channel", "cols"), [(2, [2]), ([0, 2], [0, 2])], ids=["int", "list"])
def test_channel_selection(channel, cols):
    p, y = _batch(4)
    full = BratsHD95Metric(spacing=(1, 1, 1))(p, y)
    sel = BratsHD95Metric(spacing=(1, 1, 1), channel=channel)(p, y)
    torch.testing.assert_close(sel, full[:, cols])


@pytest.mark.parametrize(
    ("kwargs", "inputs", "match"),
    [
        pytest.param({}, "plain", "spacing", id="no-spacing"),
        pytest.param({"spacing": (1, 1, 1)}, "probabilities", "binary", id="not-binary"),
        pytest.param({"spacing": (1, 1, 1)}, "4d", "B, C, H, W, D", id="4d"),
        pytest.param({"spacing": (1, 1, 1), "channel": 5}, "plain", "out of range", id="channel"),
    ],
)
def test_errors_are_explicit(kwargs, inputs, match):
    p, y = _batch(5)
    if inputs == "probabilities":
        p = p * 0.7
    if inputs == "4d":
        p, y = p[0], y[0]
    with pytest.raises(ValueError, match=match):
        BratsHD95Metric(**kwargs)(p, y)


def test_ignite_metric_handler_logs_mean_hd95():
    import ignite.engine as ignite_engine  # MONAI's ignite extra, a runtime dependency
    from monai.handlers import IgniteMetricHandler

    p, y = _batch(6)
    spacing = (1.0, 1.0, 1.0)
    y_meta = _batched_meta(y, torch.stack([torch.eye(4)] * 2))

    def step(engine, batch):
        return decollate_batch(p), decollate_batch(y_meta)

    engine = ignite_engine.Engine(step)
    handler = IgniteMetricHandler(
        metric_fn=BratsHD95Metric(channel=0), output_transform=lambda o: o
    )
    handler.attach(engine, "hd95_ch0")
    engine.run([0], max_epochs=1)
    expected = _expected(p, y, [spacing] * 2, 373.1287)[:, 0].mean()
    assert engine.state.metrics["hd95_ch0"] == pytest.approx(expected, rel=1e-5)

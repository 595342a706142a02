"""Lesion-wise scores on region channels (validation) agree with the label-map scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from mrivol.metrics import LesionwiseMetric, channel_rules, lesionwise_channels, lesionwise_report
from tests.metrics.conftest import random_blob_mask

REGIONS = ("tc", "wt", "et")


def _label_map(rng: np.random.Generator, shape=(32, 32, 24)) -> np.ndarray:
    """2023 labels (1 NCR, 2 ED, 3 ET) from independent random blobs, nested as BraTS is."""
    out = np.zeros(shape, np.uint8)
    out[random_blob_mask(rng, shape, fill=0.12, sigma=1.5)] = 2
    out[random_blob_mask(rng, shape, fill=0.06, sigma=1.5)] = 1
    out[random_blob_mask(rng, shape, fill=0.04, sigma=1.2)] = 3
    return out


def _channels(labels: np.ndarray) -> np.ndarray:
    """TC, WT, ET channels of a 2023 label map."""
    return np.stack([np.isin(labels, (1, 3)), labels > 0, labels == 3])


@pytest.mark.parametrize("preset", ["BraTS-GLI", "BraTS-MET", "BraTS-MEN-2024"])
@pytest.mark.parametrize("seed", range(4))
def test_channels_give_the_label_map_scores(preset: str, seed: int):
    rng = np.random.default_rng(seed)
    pred, true = _label_map(rng), _label_map(rng)
    spacing = (1.0, 1.2, 2.0)
    expected = lesionwise_report(pred, true, spacing=spacing, rules=preset, case_id="c")
    got = lesionwise_channels(
        _channels(pred), _channels(true), spacing=spacing, rules=preset, regions=REGIONS,
        case_id="c",
    )  # fmt: skip
    assert got == expected
    assert any(r["num_fp"] or r["num_fn"] for r in got)  # the cases are not trivial


def test_rules_needing_regions_without_channels_are_refused():
    with pytest.raises(ValueError, match=r"need regions \['NETC', 'SNFH', 'RC'\]"):
        channel_rules("BraTS-GLI-2024", REGIONS)
    with pytest.raises(ValueError, match="need regions"):
        LesionwiseMetric(rules="BraTS-GLI-2024", regions=REGIONS)


def test_metric_reads_spacing_from_the_metatensor_so_thresholds_are_in_mm3():
    """A missed 27-voxel ET lesion: 27 mm^3 at 1 mm is at most 50 mm^3 (dropped, ET both
    empty -> 1); at 2 mm it is 216 mm^3 (kept, missed -> 0). WT and TC are found."""
    y = torch.zeros(1, 3, 24, 24, 24)
    y[:, :2, 4:14, 4:14, 4:14] = 1
    y[:, 2, 16:19, 16:19, 16:19] = 1
    y[:, :2, 16:19, 16:19, 16:19] = 1  # ET inside TC and WT
    pred = y.clone()
    pred[:, 2] = 0
    values = {}
    for mm in (1.0, 2.0):
        affine = torch.diag(torch.tensor([mm, mm, mm, 1.0]))
        metric = LesionwiseMetric(rules="BraTS-GLI", regions=REGIONS, reduction="mean_batch")
        metric(MetaTensor(pred, affine=affine), MetaTensor(y, affine=affine))
        values[mm] = metric.aggregate().tolist()
    assert values[1.0] == [1.0, 1.0, 1.0]
    assert values[2.0] == [1.0, 1.0, 0.0]


def test_metric_hd95_and_channels_outside_the_rules():
    y = torch.zeros(2, 4, 24, 24, 24)
    y[:, :3, 4:12, 4:12, 4:12] = 1
    pred = y.clone()
    pred[1, 1, 18:22, 18:22, 18:22] = 1  # case 2: a false positive in WT
    metric = LesionwiseMetric(
        rules="BraTS-GLI", regions=[*REGIONS, "extra"], value="hd95", spacing=(1, 1, 1)
    )
    out = metric(pred, y)
    assert out[:, :3].tolist() == [[0.0, 0.0, 0.0], [0.0, 187.0, 0.0]]  # (0 + 374) / 2
    assert torch.isnan(out[:, 3]).all()  # "extra" is no region of the rules
    assert float(metric.aggregate()) == pytest.approx(187.0 / 6)


def test_metric_refuses_probabilities():
    y = torch.zeros(1, 3, 8, 8, 8)
    with pytest.raises(ValueError, match="must be binary"):
        LesionwiseMetric(spacing=(1, 1, 1))(y + 0.3, y)

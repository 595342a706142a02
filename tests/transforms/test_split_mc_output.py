"""SplitMcOutputd: an MC predictor's output as probability, entropy and MI maps."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from mrivol.transforms import SplitMcOutputd


@pytest.mark.parametrize("channels", [3, 6], ids=["deterministic", "mc"])
def test_split_mc_output_keys_and_metadata(channels):
    affine = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0]))
    pred = MetaTensor(torch.rand(channels, 4, 4, 4) * 0.5, affine=affine)
    out = SplitMcOutputd("pred", channels=3)({"pred": pred})
    assert "pred" not in out
    expected = {"prob"} if channels == 3 else {"prob", "entropy", "mi"}
    assert set(out) == expected
    for key in expected:
        assert out[key].shape == (3, 4, 4, 4)
        torch.testing.assert_close(out[key].affine, affine.double(), check_dtype=False)
    if channels == 6:
        assert torch.all(out["mi"] <= out["entropy"] + 1e-6)


def test_split_mc_output_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="expected 3"):
        SplitMcOutputd("pred", channels=3)({"pred": torch.zeros(4, 2, 2, 2)})

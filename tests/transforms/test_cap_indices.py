"""CapIndicesd: crop-centre indices thinned evenly to a cap and stored as int32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrivol.transforms import CapIndices, CapIndicesd


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_caps_evenly_and_casts_to_int32(kind):
    indices = np.arange(0, 100_000, 3, dtype=np.int64)
    given = torch.as_tensor(indices) if kind == "torch" else indices
    out = CapIndices(max_samples=1000)(given)
    assert out.dtype == np.int32 and out.size == 1000
    assert out[0] == indices[0] and out[-1] == indices[-1]  # the whole range stays covered
    assert set(out.tolist()) <= set(indices.tolist())
    gaps = np.diff(out)
    assert gaps.max() - gaps.min() <= 3  # evenly spaced (one index step of rounding)


def test_short_sets_are_kept_whole():
    out = CapIndicesd(keys=["fg", "bg"], max_samples=10)({"fg": np.arange(4), "bg": np.arange(50)})
    assert out["fg"].tolist() == [0, 1, 2, 3] and out["bg"].size == 10


@pytest.mark.parametrize("bad", [0, -5])
def test_bad_cap_is_refused(bad):
    with pytest.raises(ValueError, match="max_samples"):
        CapIndices(max_samples=bad)


def test_indices_beyond_int32_are_refused():
    with pytest.raises(ValueError, match="int32"):
        CapIndices()(np.array([2**31 + 5]))

"""BratsRegionsToLabels(d): the inverse of MONAI's BraTS label -> region conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

from mrivol.transforms import BratsRegionsToLabels, BratsRegionsToLabelsd


@pytest.mark.parametrize("et_label", [4, 3], ids=["brats2021", "brats2023"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_round_trip_recovers_labels(et_label: int, backend: str):
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 2, et_label], size=(1, 9, 8, 7)).astype(np.uint8)
    regions = ConvertToMultiChannelBasedOnBratsClasses(et_label=et_label)(labels)
    if backend == "torch":
        regions = torch.as_tensor(regions)
    back = BratsRegionsToLabels(et_label=et_label)(regions)
    np.testing.assert_array_equal(np.asarray(back), labels)


def test_sub_regions_overwrite_parents():
    regions = np.zeros((3, 4, 1, 1), dtype=np.float32)
    regions[1, :3] = 1  # WT on voxels 0-2
    regions[0, :2] = 1  # TC on voxels 0-1
    regions[2, 0] = 1  # ET on voxel 0
    out = BratsRegionsToLabels()(regions)[0, :, 0, 0]
    assert out.tolist() == [4, 1, 2, 0]


def test_dictionary_wrapper_keeps_affine_and_other_keys():
    affine = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0], dtype=torch.float64))
    pred = MetaTensor(torch.zeros(3, 4, 4, 4), affine=affine)
    pred[:, 1, 1, 1] = 1
    out = BratsRegionsToLabelsd(keys="pred")({"pred": pred, "image": "untouched"})
    assert out["image"] == "untouched"
    assert out["pred"].shape == (1, 4, 4, 4)
    torch.testing.assert_close(out["pred"].affine, affine)
    assert int(out["pred"][0, 1, 1, 1]) == 4


@pytest.mark.parametrize(
    ("kwargs", "shape", "match"),
    [({"et_label": 2}, (3, 2, 2, 2), "et_label"), ({}, (2, 2, 2, 2), "3 region channels")],
    ids=["bad-et-label", "wrong-channels"],
)
def test_invalid_input_raises(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        BratsRegionsToLabels(**kwargs)(np.zeros(shape))

"""TumourVolumeClassd: the whole-tumour volume (mL, from the voxel size) picks the class."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from mrivol.transforms import TumourVolumeClassd


def test_volume_class_transform_counts_whole_tumour_in_ml():
    label = torch.zeros(3, 10, 10, 10)
    label[1, :5, :4] = 1  # WT channel: 200 voxels of 2 mm^3 = 1.6 mL
    label = MetaTensor(label, affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    assert TumourVolumeClassd(edges=[1.0, 2.0])({"label": label})["class"] == 1
    assert TumourVolumeClassd(edges=[1.0, 1.5])({"label": label})["class"] == 2


def test_missing_label_is_named_unless_allowed():
    with pytest.raises(KeyError, match="no 'label'"):
        TumourVolumeClassd(edges=[1.0])({"image": torch.zeros(1)})
    assert TumourVolumeClassd(edges=[1.0], allow_missing_keys=True)({"x": 1}) == {"x": 1}

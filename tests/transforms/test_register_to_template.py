"""RegisterToTemplate(d): phantom brought to MNI152, compared with its true pose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from mrivol.preprocessing.qc import world_points
from mrivol.transforms.register_to_template import RegisterToTemplated, load_template
from tests.transforms.test_skull_strip import files, load, make_phantom


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3 mm phantom case shared with test_skull_strip."""
    return make_phantom(tmp_path_factory)


@pytest.mark.slow
def test_phantom_pose_recovered(phantom_dir: Path) -> None:
    from nilearn import datasets

    data = {
        "t1": load(files(phantom_dir, "t1")),
        "brain_mask": load(files(phantom_dir, "brainmask")),
    }
    seg = load(phantom_dir / f"{phantom_dir.name}_seg.nii.gz")
    data["seg"] = seg
    out = RegisterToTemplated(keys=["t1", "brain_mask", "seg"], ref_key="t1", resolution=2,
                              iterations=100)(data)  # fmt: skip
    template, affine = load_template(2)
    for key in ("t1", "brain_mask", "seg"):
        assert tuple(out[key].shape[1:]) == template.shape
        assert np.allclose(out[key].affine.numpy(), affine)
    assert set(np.unique(out["seg"].numpy())) <= set(np.unique(seg.numpy()))  # nearest labels
    mni_mask = datasets.load_mni152_brain_mask(resolution=2)
    xyz = world_points(np.asarray(mni_mask.dataobj) > 0, mni_mask.affine)
    est = np.asarray(out["t1"].meta["mni"]["matrix_ras"])
    pose = json.loads((phantom_dir / "truth" / f"{phantom_dir.name}_pose.json").read_text())
    true = np.asarray(pose["mni_to_case_world"])
    error = np.linalg.norm(xyz @ (est - true)[:3, :3].T + (est - true)[:3, 3], axis=1).mean()
    assert error <= 2.0  # 3 mm phantom voxels


def test_bad_resolution() -> None:
    with pytest.raises(ValueError, match="1 or 2 mm"):
        load_template(3)


def test_plain_array_without_affine_raises() -> None:
    reg = RegisterToTemplated(keys="t1", mask_key=None)
    with pytest.raises(ValueError, match="no affine"):
        reg({"t1": torch.rand(1, 8, 8, 8).numpy()})
    assert isinstance(MetaTensor(torch.rand(1, 2, 2, 2)), torch.Tensor)

"""SkullStrip / SkullStripd: Dice on phantoms, mask applied to every modality, backends."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from mrivol.metrics import dice_score as dice
from mrivol.transforms.skull_strip import SkullStrip, SkullStripd

SHAPE, SPACING = (64, 64, 52), (3.0, 3.0, 3.0)


def make_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 3 mm phantom case, generated once per session (later calls find it complete)."""
    from mrivol.synth.phantoms import generate_brats_phantoms

    root = tmp_path_factory.getbasetemp() / "phantom_3mm"
    return generate_brats_phantoms(root, n_cases=1, shape=SHAPE, spacing=SPACING,
                                   progress=False)[0]  # fmt: skip


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3 mm phantom case directory."""
    return make_phantom(tmp_path_factory)


def load(path: Path) -> MetaTensor:
    img = nib.load(path)
    arr = torch.from_numpy(img.get_fdata(dtype=np.float32))[None]
    return MetaTensor(arr, affine=torch.as_tensor(img.affine), meta={"filename_or_obj": str(path)})


def files(case_dir: Path, key: str) -> Path:
    name = case_dir.name
    return case_dir / ("truth/" if key == "brainmask" else "") / f"{name}_{key}.nii.gz"


def test_threshold_backend_dice_on_phantom(phantom_dir: Path) -> None:
    t1 = load(files(phantom_dir, "t1"))
    truth = load(files(phantom_dir, "brainmask"))[0].numpy() > 0
    mask = SkullStrip(backend="threshold").compute_mask(t1)
    assert mask.dtype == torch.uint8 and tuple(mask.shape) == tuple(t1.shape)
    assert dice(mask[0].numpy() > 0, truth) >= 0.95


def test_dict_applies_one_mask_to_all_keys_and_keeps_affine(phantom_dir: Path) -> None:
    data = {k: load(files(phantom_dir, k)) for k in ("t1", "t2")}
    out = SkullStripd(keys=["t1", "t2"], ref_key="t1", mask_key="brain_mask")(data)
    mask = out["brain_mask"][0] > 0
    for key in ("t1", "t2"):
        assert torch.equal(out[key].affine, data[key].affine)
        assert out[key].meta["filename_or_obj"] == data[key].meta["filename_or_obj"]
        assert float(out[key][0][~mask].abs().max()) == 0.0
        assert torch.equal(out[key][0][mask], data[key][0][mask])
    assert torch.equal(out["brain_mask"].affine, data["t1"].affine)


def test_given_mask_backend_uses_the_mask() -> None:
    img = MetaTensor(torch.rand(1, 8, 8, 8) + 1, affine=torch.eye(4))
    mask = torch.zeros(1, 8, 8, 8, dtype=torch.uint8)
    mask[:, 2:5, 2:5, 2:5] = 1
    out = SkullStripd(keys="t1", backend="mask", mask_key="m")({"t1": img, "m": mask})
    assert int((out["t1"] > 0).sum()) == 27
    with pytest.raises(KeyError, match="brain mask under key 'm'"):
        SkullStripd(keys="t1", backend="mask", mask_key="m")({"t1": img})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"backend": "bet2"}, "unknown skull-strip backend"), ({}, "constant")],
    ids=["unknown-backend", "constant-image"],
)
def test_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SkullStrip(**kwargs).compute_mask(MetaTensor(torch.ones(1, 8, 8, 8), affine=torch.eye(4)))


def test_mask_grid_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="co-register / resample first"):
        SkullStrip()(torch.ones(1, 8, 8, 8), mask=torch.ones(1, 8, 8, 9))


@pytest.mark.slow
def test_deepbet_backend_dice_on_phantom(phantom_dir: Path) -> None:
    pytest.importorskip("deepbet")
    t1 = load(files(phantom_dir, "t1"))
    truth = load(files(phantom_dir, "brainmask"))[0].numpy() > 0
    mask = SkullStrip(backend="deepbet").compute_mask(t1)
    assert tuple(mask.shape[1:]) == truth.shape
    assert dice(mask[0].numpy() > 0, truth) >= 0.9

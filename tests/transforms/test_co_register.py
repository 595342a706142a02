"""CoRegister(d): a 5 degree / 5 mm misaligned modality is brought back to <= 1 mm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.data import MetaTensor

from mrivol.preprocessing.qc import world_points
from mrivol.synth.phantom_render import rotation_matrix
from mrivol.transforms.co_register import CoRegister, CoRegisterd, transform_to_ras_matrix
from mrivol.transforms.sitk_bridge import LPS, from_sitk, to_sitk
from tests.transforms.test_skull_strip import files, load, make_phantom


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3 mm phantom case shared with test_skull_strip."""
    return make_phantom(tmp_path_factory)


def misalign(img: MetaTensor, centre: np.ndarray, degrees: float, mm: float):
    """Move the content of ``img`` by a rigid transform; return (moved, true reference->moving)."""
    rot = rotation_matrix((degrees / np.sqrt(3),) * 3)
    t = np.eye(4)
    t[:3, :3] = rot
    t[:3, 3] = centre + np.full(3, mm / np.sqrt(3)) - rot @ centre  # moving(y) = img(t(y))
    t_lps = LPS @ t @ LPS
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(t_lps[:3, :3].ravel().tolist())
    tx.SetTranslation(t_lps[:3, 3].tolist())
    src = to_sitk(img[0].numpy(), img.affine.numpy())
    moved = from_sitk(sitk.Resample(src, src, tx, sitk.sitkLinear, 0.0))[0]
    return MetaTensor(torch.from_numpy(moved)[None], affine=img.affine.clone()), np.linalg.inv(t)


@pytest.mark.parametrize(
    "transform", ["rigid", pytest.param("affine", marks=pytest.mark.slow)], ids=["rigid", "affine"]
)
def test_misaligned_modality_within_1mm(phantom_dir: Path, transform: str) -> None:
    t1, t2 = load(files(phantom_dir, "t1")), load(files(phantom_dir, "t2"))
    brain = load(files(phantom_dir, "brainmask"))[0].numpy() > 0
    xyz = world_points(brain, t1.affine.numpy())
    moving, truth = misalign(t2, xyz.mean(0), degrees=5.0, mm=5.0)
    before = np.linalg.norm(xyz @ truth[:3, :3].T + truth[:3, 3] - xyz, axis=1).mean()
    out = CoRegisterd(keys=["t1", "t2"], ref_key="t1", transform=transform, shrink=(2, 1),
                      smoothing_mm=(2.0, 0.0))({"t1": t1, "t2": moving})  # fmt: skip
    est = np.asarray(out["t2"].meta["coregister"]["matrix_ras"])
    diff = est - truth
    error = np.linalg.norm(xyz @ diff[:3, :3].T + diff[:3, 3],
                           axis=1).mean()  # fmt: skip
    assert before > 5.0
    assert error <= 1.0
    assert torch.equal(out["t1"], t1)  # the reference is untouched


def test_output_on_reference_grid() -> None:
    rng = np.random.default_rng(0)
    ref = MetaTensor(
        torch.from_numpy(rng.random((1, 20, 22, 18), dtype=np.float32)),
        affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64)),
    )
    mov_aff = torch.tensor([[-1.5, 0, 0, 30], [0, -1.5, 0, 30], [0, 0, 1.5, 0], [0, 0, 0, 1]],
                           dtype=torch.float64)  # LPS-stored, other spacing  # fmt: skip
    mov = MetaTensor(torch.rand(2, 16, 16, 16), affine=mov_aff, meta={"filename_or_obj": "m"})
    out = CoRegister(iterations=5, shrink=(1,), smoothing_mm=(0.0,))(mov, reference=ref)
    assert tuple(out.shape) == (2, 20, 22, 18)
    assert torch.allclose(out.affine, ref.affine)
    assert out.meta["filename_or_obj"] == "m"


def test_ras_matrix_matches_sitk_points() -> None:
    tx = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.05, 0.2, (4.0, -5.0, 6.0))
    m = transform_to_ras_matrix(tx)
    p_ras = np.array([10.0, -20.0, 30.0])
    q_lps = np.asarray(tx.TransformPoint((LPS[:3, :3] @ p_ras).tolist()))
    assert np.allclose(m[:3, :3] @ p_ras + m[:3, 3], LPS[:3, :3] @ q_lps)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"transform": "bspline"}, "rigid"), ({"interpolation": "cubic"}, "interpolation"),
     ({"shrink": (4, 2), "smoothing_mm": (1.0,)}, "differ"), ({"init": "centre"}, "init")],
    ids=["transform", "interpolation", "pyramid", "init"],
)  # fmt: skip
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CoRegister(**kwargs)

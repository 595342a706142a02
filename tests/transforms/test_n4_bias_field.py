"""N4BiasFieldCorrection(d): residual white-matter CoV on phantoms, metadata, known fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from mrivol.preprocessing.qc import cov
from mrivol.transforms.n4_bias_field import N4BiasFieldCorrection, N4BiasFieldCorrectiond
from tests.transforms.test_skull_strip import files, load, make_phantom


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3 mm phantom case shared with test_skull_strip."""
    return make_phantom(tmp_path_factory)


@pytest.mark.parametrize("modality", ["t1", "t2"], ids=["t1", "t2"])
def test_residual_wm_cov_close_to_bias_free(phantom_dir: Path, modality: str) -> None:
    img = load(files(phantom_dir, modality))
    mask = load(files(phantom_dir, "brainmask")).to(torch.uint8)
    tissue = load(phantom_dir / "truth" / f"{phantom_dir.name}_tissue.nii.gz")[0].numpy()
    bias = load(phantom_dir / "truth" / f"{phantom_dir.name}_bias_{modality}.nii.gz")[0].numpy()
    wm = tissue == 3
    out = N4BiasFieldCorrectiond(keys=modality, mask_key="mask")({modality: img, "mask": mask})
    corrected = out[modality][0].numpy()
    free = cov((img[0].numpy() / bias)[wm])
    assert cov(corrected[wm]) <= 1.10 * free
    assert torch.equal(out[modality].affine, img.affine)
    assert out[modality].dtype == torch.float32


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (1.0, 1.0, 5.0)], ids=["iso", "aniso"])
def test_removes_a_known_smooth_field(spacing: tuple[float, ...]) -> None:
    shape = (48, 48, 40) if spacing[2] < 5 else (64, 64, 12)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    ball = sum(g**2 for g in grid) < 0.8
    rng = np.random.default_rng(0)
    flat = np.where(ball, 100.0 + rng.normal(0, 1.0, shape), 0.0).astype(np.float32)
    field = np.exp(0.25 * grid[0] + 0.15 * grid[1] ** 2).astype(np.float32)
    img = MetaTensor(torch.from_numpy(flat * field)[None], affine=torch.diag(
        torch.tensor([*spacing, 1.0], dtype=torch.float64)))  # fmt: skip
    out = N4BiasFieldCorrection()(img)[0].numpy()
    assert cov(out[ball]) < 0.5 * cov((flat * field)[ball])
    assert float(np.abs(out[~ball]).max()) == 0.0  # background stays zero


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shrink_factor"):
        N4BiasFieldCorrection(shrink_factor=0)


def test_empty_mask_raises() -> None:
    img = MetaTensor(torch.rand(1, 16, 16, 16) + 1, affine=torch.eye(4))
    with pytest.raises(ValueError, match="positive voxels inside the mask"):
        N4BiasFieldCorrection()(img, mask=torch.zeros(1, 16, 16, 16))

"""Fixtures for tests/planning: tiny NIfTI cases written on the fly."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

SHAPE = (20, 24, 16)
SPACING = (1.0, 1.2, 2.0)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _affine() -> np.ndarray:
    """Non-identity affine: spacing SPACING, a flip on x and an offset."""
    affine = np.diag([-SPACING[0], SPACING[1], SPACING[2], 1.0])
    affine[:3, 3] = (90.0, -126.0, -72.0)
    return affine


def write_case(folder: Path, name: str, rng: np.random.Generator) -> dict[str, str]:
    """Write a 2-channel case with zero background and a 3-class label; return its paths.

    Non-zero region: [3:17, 4:20, 2:14] (shape 14 x 16 x 12); label 1 in [5:10, 6:12, 4:9],
    label 2 in [10:15, 6:12, 4:9].
    """
    case = {"case_id": name}
    region = (slice(3, 17), slice(4, 20), slice(2, 14))
    for c, key in enumerate(("t1", "flair")):
        data = np.zeros(SHAPE, np.float32)
        data[region] = rng.normal(100.0 * (c + 1), 10.0, size=(14, 16, 12)).astype(np.float32)
        path = folder / f"{name}_{key}.nii.gz"
        nib.save(nib.Nifti1Image(data, _affine()), path)
        case[key] = str(path)
    seg = np.zeros(SHAPE, np.uint8)
    seg[5:10, 6:12, 4:9] = 1
    seg[10:15, 6:12, 4:9] = 2
    path = folder / f"{name}_seg.nii.gz"
    nib.save(nib.Nifti1Image(seg, _affine()), path)
    case["seg"] = str(path)
    return case


@pytest.fixture
def nifti_cases(tmp_path: Path) -> list[dict[str, str]]:
    """Two tiny 2-channel cases with labels (see :func:`write_case`)."""
    rng = np.random.default_rng(0)
    return [write_case(tmp_path, f"sub-{i:02d}", rng) for i in range(2)]

"""Reading NIfTI files without trusting them: the whole gzip stream, and affine comparisons.

FACTS.md: a corrupted byte inside the gzip stream goes unnoticed by nibabel and SimpleITK
alike; only reading the stream to its end (which checks the CRC) detects it. Shared by the
manifest check and the preprocessing loader.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["affine_mismatch", "load_nifti_verified"]


def load_nifti_verified(path: str) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load a NIfTI image and its voxels, reading the whole gzip stream (CRC and length).

    nibabel alone stops reading at the end of the voxel data, before the gzip trailer, so a
    corrupted byte would go unnoticed; hence the file is decompressed to EOF first.

    Raises:
        EOFError: on a truncated file; other exceptions on corrupted or non-NIfTI files.
    """
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            raw = f.read()  # to EOF: gzip verifies CRC32 and size of the stream
    else:
        raw = Path(path).read_bytes()
    try:
        img = nib.Nifti1Image.from_bytes(raw)
    except nib.spatialimages.HeaderDataError:
        img = nib.Nifti2Image.from_bytes(raw)
    return img, np.asanyarray(img.dataobj)


def affine_mismatch(a: np.ndarray, b: np.ndarray, *, atol_mm: float, atol_rot: float) -> str:
    """Describe how two 4x4 affines differ beyond tolerance, or return ``""``."""
    za, zb = np.linalg.norm(a[:3, :3], axis=0), np.linalg.norm(b[:3, :3], axis=0)
    out = []
    if np.abs(a[:3, 3] - b[:3, 3]).max() > atol_mm:
        out.append(f"origin {np.round(a[:3, 3], 3).tolist()} vs {np.round(b[:3, 3], 3).tolist()}")
    if np.abs(za - zb).max() > atol_mm:
        out.append(f"spacing {np.round(za, 4).tolist()} vs {np.round(zb, 4).tolist()}")
    if np.abs(a[:3, :3] / za - b[:3, :3] / zb).max() > atol_rot:
        out.append("direction differs")
    return "; ".join(out)

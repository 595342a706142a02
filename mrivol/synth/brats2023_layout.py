"""Write a BraTS 2021-layout case folder (e.g. the phantoms) again in the BraTS 2023+ layout.

BraTS 2023-2025 (GLI, MEN, MET, PED, SSA) name cases ``BraTS-<CH>-<subject>-<time point>`` and
files ``<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz`` with labels 1 NCR, 2 ED, 3 ET. This copies the
four modalities under those names and relabels ET 4 -> 3, so the ``brats2023`` manifest layout,
its checks and training can be exercised on synthetic data with exact truth.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from mrivol.data.layout import BRATS2023_MODALITIES, BRATS_MODALITIES
from mrivol.io import atomic_path

__all__ = ["write_brats2023_layout"]


def write_brats2023_layout(
    src_root: str | Path, out_root: str | Path, *, challenge: str = "PHA"
) -> dict[str, str]:
    """Copy every ``<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz`` case of ``src_root`` into
    ``out_root/BraTS-<challenge>-<nnnnn>-000/`` in BraTS 2023 names and labels.

    Args:
        src_root: folder of BraTS 2021-layout cases (``generate_brats_phantoms`` writes one).
        out_root: destination folder (created).
        challenge: the challenge tag of the new case ids (``PHA``: phantom).

    Returns:
        ``{old case id: new case id}``, in sorted order of the old ids.

    Raises:
        FileNotFoundError: a case lacks one of its files (named).
    """
    src_root, out_root = Path(src_root), Path(out_root)
    cases = sorted(p for p in src_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = {}
    for i, case_dir in enumerate(cases):
        old, new = case_dir.name, f"BraTS-{challenge}-{i:05d}-000"
        target = out_root / new
        target.mkdir(parents=True, exist_ok=True)
        for src, dst in zip(BRATS_MODALITIES, BRATS2023_MODALITIES, strict=True):
            path = case_dir / f"{old}_{src}.nii.gz"
            if not path.is_file():
                raise FileNotFoundError(f"case {old}: {path} is missing")
            with atomic_path(target / f"{new}-{dst}.nii.gz", suffix=".nii.gz") as tmp:
                shutil.copyfile(path, tmp)
        seg_path = case_dir / f"{old}_seg.nii.gz"
        if not seg_path.is_file():
            raise FileNotFoundError(f"case {old}: {seg_path} is missing")
        seg = nib.load(seg_path)
        labels = np.asanyarray(seg.dataobj).astype(np.uint8)
        labels[labels == 4] = 3  # BraTS 2023+: ET is 3
        with atomic_path(target / f"{new}-seg.nii.gz", suffix=".nii.gz") as tmp:
            nib.save(nib.Nifti1Image(labels, seg.affine, seg.header), tmp)
        names[old] = new
    return names

"""Tests for mrivol.data.manifest_check: every problem is found and reported by case and file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrivol.data.manifest import build_manifest
from mrivol.data.manifest_check import Problem, check_manifest, format_problems
from tests.data.test_manifest import AFFINE, make_brats_root, write_nifti

CASE = "BraTS2021_00001"


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A clean 3-case, 3-fold manifest with its data next to it (each test may damage it)."""
    root = make_brats_root(tmp_path / "data", 3)
    out = tmp_path / "brats2021.csv"
    build_manifest(layout="brats2021", root=root, out=out, folds=3, seed=0)
    return out


def _file(manifest: Path, key: str, case: str = CASE) -> Path:
    return manifest.parent / "data" / case / f"{case}_{key}.nii.gz"


def _volume(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj).copy()


def _missing(p: Path) -> None:
    p.unlink()


def _nan(p: Path) -> None:
    data = _volume(p)
    data[3, 4, 5] = np.nan
    write_nifti(p, data)


def _inf(p: Path) -> None:
    data = _volume(p)
    data[0, 0, 0] = -np.inf
    write_nifti(p, data)


def _label3(p: Path) -> None:
    data = _volume(p)
    data[7, 7, 7] = 3
    write_nifti(p, data)


def _all_zero(p: Path) -> None:
    write_nifti(p, np.zeros_like(_volume(p), dtype=np.float32))


def _linear_label(p: Path) -> None:
    """The label map shifted half a voxel with linear interpolation: fractions at the borders."""
    from scipy import ndimage

    write_nifti(p, ndimage.shift(_volume(p).astype(np.float32), (0.5, 0, 0), order=1))


def _truncated(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:-2000])


def _flipped_byte(p: Path) -> None:
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    p.write_bytes(bytes(raw))
    nib.load(p).get_fdata()  # nibabel alone reads it silently: only the CRC tells


def _qform_shift(p: Path) -> None:
    img = nib.load(p)
    shifted = AFFINE.copy()
    shifted[:3, 3] += [0.0, 2.0, 0.0]
    img.set_qform(shifted, code=1)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), None, img.header), p)


def _four_d(p: Path) -> None:
    write_nifti(p, np.stack([_volume(p)] * 2, axis=-1))


def _shape(p: Path) -> None:
    write_nifti(p, _volume(p)[:, :, :12])


def _affine(p: Path) -> None:
    moved = AFFINE.copy()
    moved[:3, 3] += 0.5
    write_nifti(p, _volume(p), moved)


def _not_nifti(p: Path) -> None:
    import gzip

    p.write_bytes(gzip.compress(b"not a nifti file" * 40))


@pytest.mark.parametrize(
    ("key", "damage", "expected"),
    [
        ("t1ce", _missing, "t1ce: file not found"),
        ("flair", _nan, "flair: 1 NaN/Inf voxel(s)"),
        ("t2", _inf, "t2: 1 NaN/Inf voxel(s)"),
        ("seg", _label3, "seg: label value(s) outside [0, 1, 2, 4]: 3 (1 voxels)"),
        ("t1", _truncated, "t1: truncated file"),
        ("t1", _flipped_byte, "CRC check failed"),
        ("t2", _qform_shift, "t2: qform and sform disagree (origin"),
        ("flair", _four_d, "flair: 4D image of shape (16, 16, 16, 2); expected 3D"),
        ("seg", _shape, "seg: shape (16, 16, 12) differs from t1 (16, 16, 16)"),
        ("t1ce", _affine, "t1ce: affine differs from t1 (origin"),
        ("t1", _not_nifti, "t1: cannot be read"),
        ("t2", _all_zero, "t2: constant image (0 everywhere)"),
        ("seg", _linear_label, "voxel(s) with non-integer label values (e.g. "),
    ],
    ids=[
        "missing", "nan", "inf", "label-3", "truncated-gzip", "corrupted-byte", "qform-sform",
        "4d", "shape-mismatch", "affine-mismatch", "not-nifti", "all-zero", "linear-label",
    ],
)  # fmt: skip
def test_each_damage_is_reported_once_by_case_and_file(
    manifest: Path, key: str, damage: Callable[[Path], None], expected: str
):
    path = _file(manifest, key)
    damage(path)
    problems = check_manifest(manifest)
    assert len(problems) == 1, format_problems(problems)
    assert problems[0].case_id == CASE
    assert Path(problems[0].file) == path
    assert expected in problems[0].problem


def test_clean_manifest_has_no_problems(manifest: Path):
    assert check_manifest(manifest, progress=True) == []
    assert format_problems([]) == "No problems found."


def test_all_problems_are_collected_not_only_the_first(manifest: Path):
    cases = [f"BraTS2021_{i:05d}" for i in range(3)]
    _missing(_file(manifest, "t1ce", cases[0]))
    _nan(_file(manifest, "flair", cases[1]))
    _label3(_file(manifest, "seg", cases[2]))
    problems = check_manifest(manifest)
    found = {(p.case_id, Path(p.file).name, p.problem.split(":")[0]) for p in problems}
    assert found == {
        (cases[0], f"{cases[0]}_t1ce.nii.gz", "t1ce"),
        (cases[1], f"{cases[1]}_flair.nii.gz", "flair"),
        (cases[2], f"{cases[2]}_seg.nii.gz", "seg"),
    }
    table = format_problems(problems)
    assert table.splitlines()[1].split() == ["case", "file", "problem"]
    assert all(c in table for c in cases)
    assert table.endswith("3 problem(s) in 3 case(s).")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.assign(case_id=d["case_id"].where(d.index != 1, d.at[0, "case_id"])),
         "case_id appears 2 times"),
        (lambda d: d.assign(subject_id="subj", fold=["0", "1", "1"]),
         "subject subj appears in folds [0, 1]"),
        (lambda d: d.assign(fold=d["fold"].where(d.index != 2, "-1")),
         "fold '-1' is not an integer >= 0"),
        (lambda d: d.assign(dataset_root="$MRIVOL_TEST_UNSET_ROOT"),
         "environment variable MRIVOL_TEST_UNSET_ROOT is not set"),
        (lambda d: d.assign(t2=d["t2"].where(d.index != 1, "")), "t2: empty path"),
        (lambda d: d.drop(columns="seg"), "missing ['seg']"),
    ],
    ids=["duplicate-case", "subject-leak", "bad-fold", "unset-env-var", "empty-path",
         "missing-column"],
)  # fmt: skip
def test_manifest_level_problems_are_reported(
    manifest: Path, monkeypatch: pytest.MonkeyPatch, edit, expected: str
):
    monkeypatch.delenv("MRIVOL_TEST_UNSET_ROOT", raising=False)
    edit(pd.read_csv(manifest, dtype=str, keep_default_na=False)).to_csv(manifest, index=False)
    problems = check_manifest(manifest)
    assert len(problems) == 1, format_problems(problems)
    assert problems[0].file == str(manifest)
    assert expected in problems[0].problem


def test_problem_table_aligns_columns_and_shortens_paths():
    problems = [
        Problem("a", "/data/brats/a/a_t1.nii.gz", "t1: bad"),
        Problem("long_case", "/data/brats/long_case/long_case_seg.nii.gz", "seg: bad"),
    ]
    lines = format_problems(problems).splitlines()
    assert lines[0] == "Paths relative to /data/brats"
    assert lines[1].split() == ["case", "file", "problem"]
    assert "a/a_t1.nii.gz" in lines[3] and "/data/brats" not in lines[3]
    assert lines[3].index("t1:") == lines[4].index("seg:") == lines[1].index("problem")

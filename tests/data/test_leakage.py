"""The leakage guard: no subject in two folds, no synthetic sample outside a training set."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrivol.data import build_manifest, read_manifest, to_datalist
from mrivol.data.splits import DataLeakageError, SubjectLeakageError, check_split


def _table(root: Path, rows: list[tuple[str, str, str]], name: str = "table.csv") -> Path:
    """Write tiny T1 files and a t1-table listing ``(subject, session, diagnosis)`` rows."""
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    recs = []
    for subject, session, dx in rows:
        rel = f"{subject}/{session}/t1.nii.gz"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        nib.save(img, root / rel)
        recs.append({"subject": subject, "session": session, "t1": rel, "diagnosis": dx})
    pd.DataFrame(recs).to_csv(root / name, index=False)
    return root / name


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    rows = [(f"s{i}", ses, ["CN", "MCI", "AD"][i % 3]) for i in range(9) for ses in ("m00", "m12")]
    table = _table(tmp_path, rows)
    out = tmp_path / "manifest.csv"
    build_manifest(layout="t1-table", root=tmp_path, out=out, folds=3, seed=0, table=table)
    return out


@pytest.fixture
def synthetic(tmp_path: Path, manifest: Path) -> Path:
    """Two DCGAN-style samples generated from fold 0's training set, one for fold 1."""
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False).head(3).copy()
    df["case_id"] = ["gan-f0-0", "gan-f0-1", "gan-f1-0"]
    df["subject_id"] = df["case_id"]
    df["fold"] = ["0", "0", "1"]
    df["synthetic"] = "1"
    out = tmp_path / "synthetic.csv"
    df.to_csv(out, index=False)
    return out


def test_subject_in_two_folds_is_refused(manifest: Path):
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    first = df.index[df["subject_id"] == "s0"][0]
    df.loc[first, "fold"] = str((int(df.loc[first, "fold"]) + 1) % 3)
    df.to_csv(manifest, index=False)
    with pytest.raises(SubjectLeakageError, match=r"subject s0: folds \[\d, \d\]"):
        read_manifest(manifest)


@pytest.mark.parametrize("split", ["val", "all"], ids=["val", "all"])
def test_synthetic_samples_refused_outside_training(manifest: Path, synthetic: Path, split: str):
    with pytest.raises(DataLeakageError, match="only be mixed into a training split"):
        to_datalist(manifest, fold=0, split=split, synthetic=synthetic)


def test_synthetic_samples_join_only_their_own_folds_training(manifest: Path, synthetic: Path):
    train0 = to_datalist(manifest, fold=0, split="train", synthetic=synthetic)
    train1 = to_datalist(manifest, fold=1, split="train", synthetic=synthetic)
    assert {i["case_id"] for i in train0 if i["synthetic"]} == {"gan-f0-0", "gan-f0-1"}
    assert {i["case_id"] for i in train1 if i["synthetic"]} == {"gan-f1-0"}
    assert not any(i["synthetic"] for i in to_datalist(manifest, fold=0, split="val"))


def test_synthetic_row_inside_a_manifest_never_reaches_validation(manifest: Path):
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    df.loc[0, "synthetic"] = "1"  # a generated scan of fold f: train-only for fold f
    df.loc[0, ["case_id", "subject_id"]] = "gan-x"
    df.to_csv(manifest, index=False)
    fold = int(df.loc[0, "fold"])
    assert "gan-x" not in {i["case_id"] for i in to_datalist(manifest, fold=fold, split="val")}
    assert "gan-x" in {i["case_id"] for i in to_datalist(manifest, fold=fold, split="train")}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.assign(synthetic="0"), "not marked synthetic"),
        (lambda d: d.assign(subject_id="s1", fold="0"), "also name subjects"),
    ],
    ids=["real-rows", "subject-clash"],
)
def test_bad_synthetic_manifest_is_refused(manifest: Path, synthetic: Path, edit, message: str):
    df = edit(pd.read_csv(synthetic, dtype=str, keep_default_na=False))
    df.to_csv(synthetic, index=False)
    with pytest.raises(DataLeakageError, match=message):
        to_datalist(manifest, fold=0, split="train", synthetic=synthetic)


@pytest.mark.parametrize(
    ("train", "evaluation", "message"),
    [
        ([{"subject_id": "a"}], [{"subject_id": "a"}], "in both training and evaluation: a"),
        ([{"subject_id": "a"}], [{"subject_id": "b", "synthetic": True, "case_id": "g"}], "g"),
    ],
    ids=["shared-subject", "synthetic-eval"],
)
def test_check_split_refuses(train, evaluation, message):
    with pytest.raises(DataLeakageError, match=message):
        check_split(train, evaluation)


def test_check_split_accepts_clean_split():
    check_split([{"subject_id": "a", "synthetic": True}], [{"subject_id": "b"}])


def test_folds_are_stratified_subject_level_and_deterministic(tmp_path: Path, manifest: Path):
    a = read_manifest(manifest)
    out = tmp_path / "again.csv"
    build_manifest(
        layout="t1-table", root=tmp_path, out=out, folds=3, seed=0, table=tmp_path / "table.csv"
    )
    assert Path(out).read_bytes() == manifest.read_bytes()
    assert (a.groupby("subject_id")["fold"].nunique() == 1).all()
    per_fold = a.drop_duplicates("subject_id").groupby(["fold", "diagnosis"]).size()
    assert (per_fold == 1).all() and len(per_fold) == 9  # 3 folds x 3 classes, one subject each
    items = to_datalist(manifest, fold=0, split="val")
    assert sorted({i["label"] for i in items}) == [0, 1, 2]

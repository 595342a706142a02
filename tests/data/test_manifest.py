"""Tests for mrivol.data.manifest: build, read, hash and datalists on tiny synthetic BraTS trees."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrivol.cli import main
from mrivol.data import BRATS2023_MODALITIES, check_manifest, to_datalist
from mrivol.data.manifest import (
    LAYOUTS,
    ManifestError,
    build_manifest,
    manifest_hash,
    manifest_settings,
    read_manifest,
)
from mrivol.data.splits import SubjectLeakageError

# A non-identity affine: permuted, flipped axes, anisotropic 1.2/1.0/1.5 mm spacing, offset origin.
AFFINE = np.array(
    [[0.0, 0.0, -1.5, 30.0], [1.2, 0.0, 0.0, -20.0], [0.0, 1.0, 0.0, 10.0], [0.0, 0.0, 0.0, 1.0]]
)
SHAPE = (16, 16, 16)
BRATS = LAYOUTS["brats2021"]


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    """Write ``data`` with ``affine`` set as both qform and sform (code 1, scanner)."""
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


def write_brats_case(root: Path, case: str, *, seed: int = 0) -> dict[str, Path]:
    """Write one BraTS 2021 case ``root/<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``."""
    rng = np.random.default_rng(seed)
    seg = np.zeros(SHAPE, np.uint8)
    seg[4:12, 4:12, 4:12] = 2
    seg[6:10, 6:10, 6:10] = 1
    seg[7:9, 7:9, 7:9] = 4
    files = {}
    for key in BRATS.images:
        data = rng.normal(100.0, 10.0, SHAPE).astype(np.float32)
        files[key] = write_nifti(root / case / f"{case}_{key}.nii.gz", data)
    files["seg"] = write_nifti(root / case / f"{case}_seg.nii.gz", seg)
    return files


def make_brats_root(root: Path, n_cases: int) -> Path:
    """Write ``n_cases`` BraTS cases ``BraTS2021_00000 ...`` under ``root``."""
    for i in range(n_cases):
        write_brats_case(root, f"BraTS2021_{i:05d}", seed=i)
    return root


@pytest.fixture(scope="module")
def brats_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight read-only synthetic BraTS cases shared by the tests of this module."""
    return make_brats_root(tmp_path_factory.mktemp("brats") / "data" / "BraTS2021", 8)


@pytest.fixture
def manifest(brats_root: Path, tmp_path: Path) -> Path:
    """A 4-fold manifest of ``brats_root`` with a relative ``dataset_root``."""
    out = tmp_path / "manifests" / "brats2021.csv"
    build_manifest(layout="brats2021", root=brats_root, out=out, folds=4, seed=0)
    return out


def test_build_writes_relative_paths_in_fixed_column_order(brats_root: Path, tmp_path: Path):
    out = tmp_path / "m" / "brats.csv"
    build_manifest(layout="brats2021", root=brats_root, out=out, folds=4, seed=0)
    text = out.read_text()
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df.columns) == [
        *("case_id", "subject_id", "session", "fold", "dataset_root"),
        *("t1", "t1ce", "t2", "flair", "seg"),
    ]
    assert str(tmp_path) not in text and str(brats_root) not in text
    root = Path(df["dataset_root"].iloc[0])
    assert not root.is_absolute()
    assert (out.parent / root).resolve() == brats_root.resolve()
    assert df.loc[0, "t1ce"] == "BraTS2021_00000/BraTS2021_00000_t1ce.nii.gz"
    assert (df["subject_id"] == df["case_id"]).all() and (df["session"] == "").all()
    assert [p.name for p in out.parent.iterdir()] == ["brats.csv"]  # no temp file left


@pytest.mark.parametrize(
    ("n_cases", "folds"), [(8, 4), (7, 3), (8, 8), (5, 1)], ids=["8/4", "7/3", "loo", "one-fold"]
)
def test_build_folds_are_balanced_and_complete(tmp_path: Path, n_cases: int, folds: int):
    root = make_brats_root(tmp_path / "data", n_cases)
    df = build_manifest(layout="brats2021", root=root, out=tmp_path / "m.csv", folds=folds)
    counts = df["fold"].value_counts()
    assert sorted(counts.index) == list(range(folds))
    assert counts.max() - counts.min() <= 1


def test_build_is_deterministic_per_seed(brats_root: Path, tmp_path: Path):
    hashes = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        out = tmp_path / f"{name}.csv"
        build_manifest(layout="brats2021", root=brats_root, out=out, folds=4, seed=seed)
        hashes[name] = manifest_hash(out)
    assert hashes["a"] == hashes["b"]
    assert hashes["a"] != hashes["c"]


def test_build_overwrites_existing_manifest(brats_root: Path, manifest: Path):
    before = manifest.read_text()
    build_manifest(layout="brats2021", root=brats_root, out=manifest, folds=2, seed=0)
    after = pd.read_csv(manifest)
    assert manifest.read_text() != before and set(after["fold"]) == {0, 1}


@pytest.mark.parametrize("missing", [("t1ce",), ("t1ce", "seg")], ids=["one", "two"])
def test_build_writes_complete_cases_and_names_the_incomplete(tmp_path, missing, capsys):
    root = make_brats_root(tmp_path / "data", 3)
    for key in missing:
        (root / "BraTS2021_00001" / f"BraTS2021_00001_{key}.nii.gz").unlink()
    df = build_manifest(layout="brats2021", root=root, out=tmp_path / "m.csv", folds=2)
    assert df.attrs["incomplete"] == {
        "BraTS2021_00001": [f"BraTS2021_00001_{key}.nii.gz" for key in missing]
    }
    assert list(read_manifest(tmp_path / "m.csv")["case_id"]) == [
        "BraTS2021_00000",
        "BraTS2021_00002",
    ]

    args = ["manifest", "build", "--layout", "brats2021", "--root", str(root), "--folds", "2"]
    assert main([*args, "--out", str(tmp_path / "cli.csv")]) == 1
    err = capsys.readouterr().err
    assert "1 incomplete case(s) left out" in err
    assert f"BraTS2021_00001: missing BraTS2021_00001_{missing[0]}.nii.gz" in err
    assert main([*args, "--out", str(tmp_path / "ok.csv"), "--skip-incomplete"]) == 0
    assert "BraTS2021_00001" in capsys.readouterr().err  # still listed
    assert len(pd.read_csv(tmp_path / "ok.csv")) == 2


def test_build_with_no_complete_case_lists_them_and_writes_nothing(tmp_path):
    root = make_brats_root(tmp_path / "data", 2)
    for case in ("BraTS2021_00000", "BraTS2021_00001"):
        (root / case / f"{case}_flair.nii.gz").unlink()
    with pytest.raises(ManifestError, match=r"BraTS2021_00001: missing BraTS2021_00001_flair"):
        build_manifest(layout="brats2021", root=root, out=tmp_path / "m.csv", folds=1)
    assert not (tmp_path / "m.csv").exists()


def write_brats2023_case(root: Path, case: str, *, seed: int = 0) -> None:
    """One BraTS 2023+ case: ``<case>/<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz``, ET = 3."""
    files = write_brats_case(root / "tmp", case, seed=seed)
    for src, dst in zip(BRATS.images, BRATS2023_MODALITIES, strict=True):
        (root / case).mkdir(parents=True, exist_ok=True)
        files[src].rename(root / case / f"{case}-{dst}.nii.gz")
    seg = nib.load(files["seg"])
    data = np.asarray(seg.dataobj)
    write_nifti(root / case / f"{case}-seg.nii.gz", np.where(data == 4, 3, data).astype(np.uint8))
    shutil.rmtree(root / "tmp")


def test_brats2023_layout_maps_the_modalities_and_sets_et_label_3(tmp_path):
    root = tmp_path / "BraTS2023-GLI"
    for i, case in enumerate(["00000-000", "00001-000", "00001-001", "00002-000"]):
        write_brats2023_case(root, f"BraTS-GLI-{case}", seed=i)
    out = tmp_path / "m.csv"
    build_manifest(layout="brats2023", root=root, out=out, folds=3)
    df = read_manifest(out)
    two_scans = df[df["subject_id"] == "BraTS-GLI-00001"]  # time points 000 and 001
    assert list(two_scans["session"]) == ["000", "001"] and two_scans["fold"].nunique() == 1
    assert df.attrs["layout"] == "brats2023"
    assert list(df.columns[5:]) == ["t1n", "t1c", "t2w", "t2f", "seg"]
    item = to_datalist(out, fold=0, split="val")[0]
    case = item["case_id"]
    # stacked as the bundles' t1, t1ce, t2, flair channels
    assert [Path(p).name for p in item["image"]] == [
        f"{case}-{m}.nii.gz" for m in ("t1n", "t1c", "t2w", "t2f")
    ]
    assert manifest_settings(out) == {"et_label": 3}
    assert check_manifest(out) == []  # label 3 is valid in this layout


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "nope"}, "Unknown layout"),
        ({"folds": 9}, "folds=9 for 8"),
        ({"folds": 0}, "folds=0"),
        ({"root_var": "1BAD"}, "not a valid environment variable"),
    ],
    ids=["layout", "too-many-folds", "zero-folds", "bad-var"],
)
def test_build_rejects_bad_arguments(brats_root: Path, tmp_path: Path, kwargs, match):
    args = {"layout": "brats2021", "root": brats_root, "out": tmp_path / "m.csv", **kwargs}
    with pytest.raises(ManifestError, match=match):
        build_manifest(**args)


@pytest.mark.parametrize("form", ["$BRATS2021_ROOT", "${BRATS2021_ROOT}"], ids=["bare", "braced"])
def test_env_var_root_resolves_when_set_and_names_variable_when_unset(
    brats_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
):
    out = tmp_path / "brats.csv"
    df = build_manifest(
        layout="brats2021", root=brats_root, out=out, folds=2, root_var="BRATS2021_ROOT"
    )
    assert (df["dataset_root"] == "$BRATS2021_ROOT").all()
    out.write_text(out.read_text().replace("$BRATS2021_ROOT", form))
    monkeypatch.setenv("BRATS2021_ROOT", str(brats_root))
    read = read_manifest(out)
    assert all(Path(p).is_file() for col in BRATS.path_columns for p in read[col])
    monkeypatch.delenv("BRATS2021_ROOT")
    with pytest.raises(ManifestError, match=r"BRATS2021_ROOT is not set") as err:
        read_manifest(out)
    assert str(out) in str(err.value) and "export BRATS2021_ROOT=" in str(err.value)


def test_read_returns_absolute_existing_paths_and_int_folds(manifest: Path):
    df = read_manifest(manifest)
    assert df["fold"].dtype == np.int64
    for col in BRATS.path_columns:
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in df[col])
    assert df.attrs["layout"] == "brats2021"
    assert df.attrs["sha256"] == manifest_hash(manifest)


def test_relative_root_survives_moving_manifest_and_data_together(tmp_path: Path):
    make_brats_root(tmp_path / "a" / "data", 2)
    build_manifest(
        layout="brats2021", root=tmp_path / "a" / "data", out=tmp_path / "a" / "m.csv", folds=2
    )
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    df = read_manifest(tmp_path / "b" / "m.csv")
    assert all(p.startswith(str(tmp_path / "b")) and Path(p).is_file() for p in df["seg"])


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda d: d.assign(fold=d["fold"].where(d.index != 2, "-1")), ManifestError, "fold '-1'"),
        (lambda d: d.assign(fold=d["fold"].where(d.index != 2, "x")), ManifestError, "fold 'x'"),
        (
            lambda d: d.assign(case_id=d["case_id"].where(d.index != 1, d.at[0, "case_id"])),
            ManifestError,
            "appears 2 times",
        ),
        (lambda d: d.assign(t2=d["t2"].where(d.index != 3, "")), ManifestError, "empty t2"),
        (lambda d: d.drop(columns="flair"), ManifestError, r"missing \['flair'\]"),
        (lambda d: d.assign(subject_id="same"), SubjectLeakageError, "subject same"),
    ],
    ids=["negative-fold", "text-fold", "duplicate-case", "empty-path", "missing-column", "leak"],
)
def test_read_rejects_invalid_manifests(manifest: Path, edit, error, match):
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    edit(df).to_csv(manifest, index=False)
    with pytest.raises(error, match=match) as err:
        read_manifest(manifest)
    assert str(manifest) in str(err.value)


@pytest.mark.parametrize("fold", [0, 3], ids=["fold0", "fold3"])
def test_datalist_train_val_partition_the_manifest(manifest: Path, fold: int):
    df = read_manifest(manifest)
    train = to_datalist(manifest, fold=fold, split="train")
    val = to_datalist(df, fold=fold, split="val")
    everything = to_datalist(manifest, fold=fold, split="all")
    ids = {"train": {d["case_id"] for d in train}, "val": {d["case_id"] for d in val}}
    assert not ids["train"] & ids["val"]
    assert ids["train"] | ids["val"] == {d["case_id"] for d in everything} == set(df["case_id"])
    assert ids["val"] == set(df.loc[df["fold"] == fold, "case_id"])
    item = val[0]
    assert set(item) == {"image", "label", "case_id", "subject_id"}
    assert [Path(p).name for p in item["image"]] == [
        f"{item['case_id']}_{k}.nii.gz" for k in ("t1", "t1ce", "t2", "flair")
    ]
    assert Path(item["label"]).name == f"{item['case_id']}_seg.nii.gz"
    assert all(isinstance(p, str) and Path(p).is_absolute() for p in item["image"])


def test_datalist_loads_as_four_channels_with_monai(manifest: Path):
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    item = to_datalist(manifest, fold=0, split="val")[0]
    out = Compose([LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"])])(item)
    assert tuple(out["image"].shape) == (4, *SHAPE) and tuple(out["label"].shape) == (1, *SHAPE)
    assert set(np.unique(out["label"].numpy()).tolist()) == {0, 1, 2, 4}


@pytest.mark.parametrize(
    ("fold", "split", "match"),
    [(4, "val", "fold 4 out of range"), (-1, "train", "out of range"), (0, "test", "split")],
    ids=["fold-too-big", "negative-fold", "unknown-split"],
)
def test_datalist_rejects_bad_fold_or_split(manifest: Path, fold: int, split: str, match: str):
    with pytest.raises(ValueError, match=match) as err:
        to_datalist(manifest, fold=fold, split=split)
    assert str(manifest) in str(err.value)


def test_datalist_rejects_empty_split(brats_root: Path, tmp_path: Path):
    out = tmp_path / "one.csv"
    build_manifest(layout="brats2021", root=brats_root, out=out, folds=1)
    assert len(to_datalist(out, fold=0, split="val")) == 8
    with pytest.raises(ValueError, match="'train' of fold 0 is empty"):
        to_datalist(out, fold=0, split="train")

"""The `mrivol` command line: exit codes and what it reports."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrivol.cli import main
from mrivol.data import build_manifest, read_manifest
from tests.conftest import write_tiny_brats_case


@pytest.fixture
def brats_copy(tmp_path: Path) -> Path:
    """Three tiny cases and their manifest, in a folder the test may damage."""
    for i in range(3):
        write_tiny_brats_case(tmp_path / "cases", f"case_{i}", seed=i)
    manifest = tmp_path / "manifest.csv"
    build_manifest(layout="brats2021", root=tmp_path / "cases", out=manifest, folds=3, seed=0)
    return manifest


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("synth", "manifest", "train", "evaluate", "infer", "mlflow-ui"):
        assert command in out


def test_manifest_build_prints_fold_sizes(tmp_path, capsys):
    for i in range(4):
        write_tiny_brats_case(tmp_path / "cases", f"c{i}", seed=i)
    out_csv = tmp_path / "m.csv"
    args = ["manifest", "build", "--layout", "brats2021", "--root", str(tmp_path / "cases")]
    assert main([*args, "--out", str(out_csv), "--folds", "2", "--seed", "1"]) == 0
    assert "4 scans of 4 subjects" in capsys.readouterr().out
    assert sorted(read_manifest(out_csv)["fold"].value_counts().tolist()) == [2, 2]


def test_manifest_check_clean_exits_zero(brats_copy, capsys):
    assert main(["manifest", "check", str(brats_copy)]) == 0
    assert "every row is valid" in capsys.readouterr().out


def test_manifest_check_reports_every_problem_by_case_and_file(brats_copy, capsys):
    df = read_manifest(brats_copy)
    rows = {r["case_id"]: r for _, r in df.iterrows()}
    Path(rows["case_0"]["t2"]).unlink()  # a missing file
    flair = nib.load(rows["case_1"]["flair"])  # a NaN image
    data = np.asarray(flair.dataobj, dtype=np.float32)
    data[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(data, flair.affine), rows["case_1"]["flair"])
    seg = nib.load(rows["case_2"]["seg"])  # a label 3 (not a BraTS 2021 label)
    labels = np.asarray(seg.dataobj).copy()
    labels[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(labels, seg.affine), rows["case_2"]["seg"])

    assert main(["manifest", "check", str(brats_copy)]) == 1
    captured = capsys.readouterr()
    report = captured.out
    lines = {
        case: [line for line in report.splitlines() if case in line]
        for case in ("case_0", "case_1", "case_2")
    }
    assert any("case_0_t2" in line for line in lines["case_0"]), report
    assert any("case_1_flair" in line and "NaN" in line for line in lines["case_1"]), report
    assert any("case_2_seg" in line and "3" in line for line in lines["case_2"]), report
    assert "3 problem(s)" in captured.err


def test_errors_are_one_line_and_exit_two(tmp_path, capsys):
    assert main(["train", "--bundle", "no_such_bundle", "--data", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mrivol train: error: no bundle 'no_such_bundle'")


def test_manifest_check_missing_manifest(tmp_path, capsys):
    code = main(["manifest", "check", str(tmp_path / "absent.csv")])
    assert code != 0
    assert "absent.csv" in capsys.readouterr().err


def test_data_layout_untouched(brats_copy):
    # the check must not modify or move anything
    before = sorted(p.name for p in brats_copy.parent.rglob("*"))
    main(["manifest", "check", str(brats_copy)])
    assert sorted(p.name for p in brats_copy.parent.rglob("*")) == before
    shutil.rmtree(brats_copy.parent / "cases")

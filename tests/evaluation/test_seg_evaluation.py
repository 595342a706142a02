"""evaluate-seg: case matching, grid check, per-case and summary CSV, box plot, QU-BraTS, CLI."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrivol.evaluation.seg_evaluation import (
    GridMismatchError,
    add_evaluate_seg_arguments,
    evaluate_segmentations,
    find_ground_truth,
    main_evaluate_seg,
)

AFFINE = np.array(
    [[-1.0, 0, 0, 20.0], [0, -1.0, 0, 30.0], [0, 0, 1.5, -10.0], [0, 0, 0, 1.0]]
)  # LPS, anisotropic
SHAPE = (24, 24, 16)


def _label(shift: int = 0, *, et: int = 4) -> np.ndarray:
    seg = np.zeros(SHAPE, np.uint8)
    seg[6 + shift : 18 + shift, 6:18, 4:12] = 2
    seg[8 + shift : 16 + shift, 8:16, 5:11] = 1
    seg[10 + shift : 14 + shift, 10:14, 6:10] = et
    return seg


def _save(array: np.ndarray, path: Path, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """gt in BraTS layout (with a T1 for the brain mask), predictions flat; case_b shifted."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for case, shift in (("case_a", 0), ("case_b", 2)):
        _save(_label(), gt / case / f"{case}_seg.nii.gz")
        _save(np.ones(SHAPE, np.float32), gt / case / f"{case}_t1.nii.gz")
        _save(_label(shift), pred / f"{case}_seg.nii.gz")
    return pred, gt


def test_find_ground_truth_flat_and_brats_layout(tmp_path: Path):
    _save(_label(), tmp_path / "flat_seg.nii.gz")
    _save(_label(), tmp_path / "nested" / "nested_seg.nii.gz")
    _save(_label(), tmp_path / "other" / "wrong_seg.nii.gz")  # folder name differs: ignored
    assert sorted(find_ground_truth(tmp_path)) == ["flat", "nested"]


def test_rows_summary_and_boxplot(dirs, tmp_path: Path):
    pred, gt = dirs
    result = evaluate_segmentations(pred, gt, out=tmp_path / "out" / "metrics.csv")
    assert not result.failed
    df = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert len(df) == 6 and set(df["region"]) == {"ET", "TC", "WT"}
    a = df[df["case"] == "case_a"]
    assert (a["dice"] == 1.0).all() and (a["hd95_mm"] == 0.0).all()
    b_wt = df[(df["case"] == "case_b") & (df["region"] == "WT")].iloc[0]
    assert b_wt["dice"] == pytest.approx(2 * 10 * 12 * 8 / (2 * 12 * 12 * 8))  # shift of 2
    assert b_wt["hd95_mm"] == pytest.approx(2.0)  # 2 voxels along a 1 mm axis
    assert b_wt["true_volume_ml"] == pytest.approx(12 * 12 * 8 * 1.5 / 1000)
    summary = pd.read_csv(tmp_path / "out" / "metrics_summary.csv").set_index("region")
    assert summary.loc["WT", "dice_mean"] == pytest.approx(df[df.region == "WT"]["dice"].mean())
    assert summary.loc["WT", "dice_median"] == pytest.approx(df[df.region == "WT"]["dice"].median())
    assert summary.loc["WT", "dice_std"] == pytest.approx(df[df.region == "WT"]["dice"].std())
    assert (tmp_path / "out" / "metrics_boxplot.png").read_bytes()[:4] == b"\x89PNG"


def test_brats2023_labels(tmp_path: Path):
    _save(_label(et=3), tmp_path / "gt" / "c_seg.nii.gz")
    _save(_label(et=3), tmp_path / "pred" / "c_seg.nii.gz")
    result = evaluate_segmentations(
        tmp_path / "pred", tmp_path / "gt", out=tmp_path / "m.csv", labels="brats2023"
    )
    assert [r["dice"] for r in result.rows] == [1.0, 1.0, 1.0]
    wrong = evaluate_segmentations(tmp_path / "pred", tmp_path / "gt", out=tmp_path / "w.csv")
    assert "c" in wrong.failed and "label" in wrong.failed["c"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("shape", r"different shapes \(24, 24, 16\) vs \(24, 24, 15\)"),
        ("origin", r"different affines \(max difference 0.5"),
        ("flip", r"different affines"),
    ],
    ids=["shape", "origin", "flip"],
)
def test_grid_mismatch_names_case_files_and_difference(dirs, tmp_path: Path, change, match):
    pred, gt = dirs
    truth = _label()
    affine = AFFINE.copy()
    if change == "shape":
        truth = truth[..., :15]
    elif change == "origin":
        affine[0, 3] += 0.5
    else:
        affine[0, 0] = 1.0
    _save(truth, gt / "case_a" / "case_a_seg.nii.gz", affine)
    result = evaluate_segmentations(pred, gt, out=tmp_path / "m.csv")
    assert set(result.failed) == {"case_a"}
    message = result.failed["case_a"]
    assert "case 'case_a'" in message and "case_a_seg.nii.gz" in message
    assert str(pred) in message and str(gt) in message
    assert re.search(match, message)
    assert {r["case"] for r in result.rows} == {"case_b"}  # the other case still evaluated


def test_grid_check_error_type(dirs, tmp_path: Path):
    from mrivol.evaluation.seg_evaluation import check_same_grid

    pred, gt = dirs
    a, b = nib.load(pred / "case_a_seg.nii.gz"), nib.load(gt / "case_a" / "case_a_seg.nii.gz")
    check_same_grid(a, b, case="case_a", pred_path=Path("p"), gt_path=Path("g"))
    moved = nib.Nifti1Image(np.asarray(a.dataobj), AFFINE + np.eye(4) * 0.01)
    with pytest.raises(GridMismatchError, match="case 'case_a'"):
        check_same_grid(moved, b, case="case_a", pred_path=Path("p"), gt_path=Path("g"))


def _cli(argv: list[str]) -> int:
    parser = add_evaluate_seg_arguments(argparse.ArgumentParser())
    return main_evaluate_seg(parser.parse_args(argv))


def test_cli_missing_case_reported_and_nonzero(dirs, tmp_path: Path, capsys):
    pred, gt = dirs
    (pred / "case_b_seg.nii.gz").unlink()
    _save(_label(), pred / "stray_seg.nii.gz")
    code = _cli(["--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "m.csv")])
    err = capsys.readouterr().err
    assert code == 1
    assert "case_b" in err and "no prediction" in err
    assert "stray" in err and "no ground truth" in err
    assert set(pd.read_csv(tmp_path / "m.csv")["case"]) == {"case_a"}


def test_cli_all_cases_exit_zero(dirs, tmp_path: Path, capsys):
    pred, gt = dirs
    assert _cli(["--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "m.csv")]) == 0
    assert "2 case(s) evaluated" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["entropy", "unc"], ids=["infer_entropy_maps", "qu_brats_unc"])
def test_qu_brats_when_uncertainty_maps_present(dirs, tmp_path: Path, kind):
    """Certain (0) where right, uncertain where wrong: case_a (perfect) scores 1, case_b
    (shifted) less, and filtering its uncertain voxels raises Dice."""
    pred, gt = dirs
    truth = _label()
    wrong = _label(2) != truth
    names = (
        {"ET": "et", "TC": "tc", "WT": "wt"}
        if kind == "entropy"
        else {
            "ET": "enhance",
            "TC": "core",
            "WT": "whole",
        }
    )
    top = math.log(2) if kind == "entropy" else 100.0  # nats, or the 0-100 QU-BraTS scale
    for name in names.values():
        for case in ("case_a", "case_b"):
            u = np.where(wrong, 0.9 * top, 0.0) if case == "case_b" else np.zeros(SHAPE)
            _save(u.astype(np.float32), pred / f"{case}_{kind}_{name}.nii.gz")
    result = evaluate_segmentations(pred, gt, out=tmp_path / "m.csv")
    rows = {(r["case"], r["region"]): r for r in result.rows}
    assert rows[("case_b", "WT")]["qu_source"] == kind
    assert rows[("case_a", "WT")]["qu_score"] == pytest.approx(1.0, abs=1e-3)
    assert 0.5 < rows[("case_b", "WT")]["qu_score"] < 1.0
    assert rows[("case_b", "WT")]["qu_auc_dice"] > rows[("case_b", "WT")]["dice"]
    summary = pd.read_csv(tmp_path / "m_summary.csv").set_index("region")
    assert "qu_score_mean" in summary.columns

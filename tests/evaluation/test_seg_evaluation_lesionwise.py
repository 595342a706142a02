"""evaluate-seg --challenge: lesion-wise columns on a hand-built case, BraTS 2023+ names.

The case (40 x 40 x 24 voxels of 1 x 1 x 1.5 mm, labels 2 = oedema only, so WT is the region
scored and TC / ET are empty in both maps) holds, far enough apart not to interact under
dilation 3:

* a big truth lesion (10 x 10 x 8 voxels), predicted exactly: Dice 1, HD95 0;
* a satellite (4^3 voxels = 96 mm^3 > 50 mm^3), missed: Dice 0, HD95 374 mm;
* a small truth lesion (3^3 voxels = 40.5 mm^3 <= 50 mm^3), predicted exactly: left out;
* a predicted component with no truth lesion (4^3 voxels): a false positive, Dice 0, 374 mm.

So by hand, 2023 GLI rules: WT lesion-wise Dice (1 + 0 + 0) / 3 = 1/3, HD95 (0 + 374 + 374) / 3,
TP 1, FP 1, FN 1; TC and ET: both empty, Dice 1, HD95 0, no counts. Legacy WT Dice:
2 * 827 / (891 + 891) (827 voxels in common of 891 on each side).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrivol.evaluation.seg_evaluation import (
    add_evaluate_seg_arguments,
    evaluate_segmentations,
    find_ground_truth,
    main_evaluate_seg,
)

AFFINE = np.diag([1.0, 1.0, 1.5, 1.0])
SHAPE = (40, 40, 24)
BIG = np.s_[4:14, 4:14, 4:12]
SATELLITE = np.s_[26:30, 4:8, 4:8]
SMALL = np.s_[4:7, 28:31, 4:7]
FALSE_POSITIVE = np.s_[28:32, 28:32, 16:20]


def _maps() -> tuple[np.ndarray, np.ndarray]:
    truth, pred = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    for box in (BIG, SATELLITE, SMALL):
        truth[box] = 2
    for box in (BIG, SMALL, FALSE_POSITIVE):
        pred[box] = 2
    return pred, truth


def _save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, AFFINE), path)
    return path


def _cli(argv: list[str]) -> int:
    parser = add_evaluate_seg_arguments(argparse.ArgumentParser())
    return main_evaluate_seg(parser.parse_args(argv))


@pytest.fixture
def brats2023(tmp_path: Path) -> tuple[Path, Path]:
    """Truth in the BraTS 2023 layout, the prediction named as a submission: <case>.nii.gz."""
    pred, truth = _maps()
    case = "BraTS-GLI-00001-000"
    _save(truth, tmp_path / "gt" / case / f"{case}-seg.nii.gz")
    _save(pred, tmp_path / "pred" / f"{case}.nii.gz")
    return tmp_path / "pred", tmp_path / "gt"


def test_hand_built_case_gives_the_derived_lesionwise_values(brats2023, tmp_path, capsys):
    pred, gt = brats2023
    out = tmp_path / "metrics.csv"
    argv = ["--pred", str(pred), "--gt", str(gt), "--challenge", "BraTS-GLI", "--out", str(out)]
    assert _cli(argv) == 0
    printed = capsys.readouterr().out
    assert "predictions named {case}.nii.gz: 1 case(s)" in printed
    df = pd.read_csv(out).set_index("region")
    assert list(df.index) == ["et", "tc", "wt"]
    wt = df.loc["wt"]
    assert wt["lesionwise_dice"] == pytest.approx(1 / 3)
    assert wt["lesionwise_hd95"] == pytest.approx(748 / 3)
    assert (wt["num_tp"], wt["num_fp"], wt["num_fn"]) == (1, 1, 1)
    assert wt["dice"] == pytest.approx(2 * 827 / (891 + 891))
    for region in ("tc", "et"):
        row = df.loc[region]
        assert (row["lesionwise_dice"], row["lesionwise_hd95"]) == (1.0, 0.0)
        assert (row["num_tp"], row["num_fp"], row["num_fn"]) == (0, 0, 0)
    summary = pd.read_csv(tmp_path / "metrics_summary.csv").set_index("region")
    assert summary.loc["wt", "lesionwise_dice_mean"] == pytest.approx(1 / 3)
    assert summary.loc["wt", "num_fp_mean"] == 1
    assert (tmp_path / "metrics_boxplot.png").stat().st_size > 0
    assert "lesion-wise dice 0.3333" in printed


def test_2021_labels_are_read_as_the_rules_labels(tmp_path):
    """ET is 4 in the 2021 convention: the scores equal those of the same map with ET 3."""
    pred, truth = _maps()
    for array in (pred, truth):
        array[BIG][2:6, 2:6, 2:6] = 3  # 4^3 voxels = 96 mm^3: a kept ET (and TC) lesion
    rows = {}
    for labels, et in (("brats2023", 3), ("brats2021", 4)):
        base = tmp_path / labels
        _save(np.where(truth == 3, et, truth).astype(np.uint8), base / "gt" / "c_seg.nii.gz")
        _save(np.where(pred == 3, et, pred).astype(np.uint8), base / "pred" / "c_seg.nii.gz")
        result = evaluate_segmentations(
            base / "pred", base / "gt", out=base / "m.csv", labels=labels, challenge="BraTS-GLI"
        )
        assert not result.failed
        rows[labels] = result.rows
    assert rows["brats2021"] == rows["brats2023"]
    et_row = next(r for r in rows["brats2021"] if r["region"] == "et")
    assert (et_row["num_tp"], et_row["num_fn"], et_row["lesionwise_dice"]) == (1, 0, 1.0)


@pytest.mark.parametrize(
    ("pred_name", "rule"),
    [("{case}_seg.nii.gz", "{case}_seg.nii.gz"), ("{case}-seg.nii.gz", "{case}-seg.nii.gz")],
)
def test_prediction_names_and_nnunet_truth_folder(tmp_path, capsys, pred_name, rule):
    pred, truth = _maps()
    _save(truth, tmp_path / "labelsTr" / "BraTS-MET-00002-000.nii.gz")  # nnU-Net: <case>.nii.gz
    _save(pred, tmp_path / "pred" / pred_name.format(case="BraTS-MET-00002-000"))
    assert sorted(find_ground_truth(tmp_path / "labelsTr")) == ["BraTS-MET-00002-000"]
    argv = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "labelsTr"), "--challenge",
            "BraTS-MET", "--out", str(tmp_path / "m.csv")]  # fmt: skip
    assert _cli(argv) == 0
    assert f"predictions named {rule}: 1 case(s)" in capsys.readouterr().out
    wt = pd.read_csv(tmp_path / "m.csv").set_index("region").loc["wt"]
    # MET 2023: threshold 2 mm^3, dilation 1 -> the small lesion (40.5 mm^3) counts too
    assert (wt["num_tp"], wt["num_fp"], wt["num_fn"]) == (2, 1, 1)
    assert wt["lesionwise_dice"] == pytest.approx(2 / 4)


def test_without_challenge_the_output_is_the_legacy_one(brats2023, tmp_path):
    pred, gt = brats2023
    result = evaluate_segmentations(pred, gt, out=tmp_path / "m.csv", labels="brats2023")
    assert not result.failed
    assert {r["region"] for r in result.rows} == {"ET", "TC", "WT"}
    assert not any(k.startswith("lesionwise") or k.startswith("num_") for k in result.rows[0])


def test_unknown_challenge_fails_before_any_case(brats2023, tmp_path):
    pred, gt = brats2023
    with pytest.raises(ValueError, match="Unknown lesion-wise rules 'BraTS-XYZ'.*BraTS-GLI"):
        evaluate_segmentations(pred, gt, out=tmp_path / "m.csv", challenge="BraTS-XYZ")
    assert not (tmp_path / "m.csv").exists()

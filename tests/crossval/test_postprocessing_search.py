"""The post-processing search keeps a rule only when it raises the OOF score (never lowers it)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrivol.crossval.postprocessing_search import OofScorer, search_postprocessing
from mrivol.inference.postprocessing import apply_postprocessing
from mrivol.metrics import lesionwise_report

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])  # 8 mm^3 voxels


def _tumour(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.zeros((40, 40, 30), np.uint8)
    c = rng.integers(12, 26, 3)
    y[c[0] - 6 : c[0] + 6, c[1] - 6 : c[1] + 6, c[2] - 5 : c[2] + 5] = 2
    y[c[0] - 3 : c[0] + 3, c[1] - 3 : c[1] + 3, c[2] - 3 : c[2] + 3] = 4
    y[c[0] - 1 : c[0] + 1, c[1] - 1 : c[1] + 1, c[2] - 1 : c[2] + 1] = 1
    return y


def _save(path: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, AFFINE), path)
    return path


def _cases(tmp_path: Path, *, specks: bool, small_truth: bool) -> dict:
    """Prediction = truth plus (optionally) 1-voxel oedema specks far from the tumour."""
    cases = {}
    for i in range(4):
        truth = _tumour(i)
        if small_truth:  # a real 2-voxel (16 mm^3) lesion the prediction finds
            truth[1, 1, 1:3] = 2
        pred = truth.copy()
        if specks:
            pred[36, 36, 2 + 3 * i] = 2
            pred[2, 36, 25] = 2
        cases[f"c{i}"] = (
            _save(tmp_path / f"c{i}_pred.nii.gz", pred),
            _save(tmp_path / f"c{i}_seg.nii.gz", truth),
        )
    return cases


def _independent_score(cases: dict, rules) -> float:
    """The mean lesion-wise Dice (BraTS-GLI) of the rules' output, computed from scratch."""
    values = []
    for pred_path, truth_path in cases.values():
        pred = apply_postprocessing(
            np.asanyarray(nib.load(pred_path).dataobj), rules, spacing=(2, 2, 2)
        )
        truth = np.asanyarray(nib.load(truth_path).dataobj)
        rows = lesionwise_report(
            np.where(pred == 4, 3, pred),
            np.where(truth == 4, 3, truth),
            spacing=(2, 2, 2),
            rules="BraTS-GLI",
        )
        values.append(np.mean([r["lesionwise_dice"] for r in rows]))
    return float(np.mean(values))


def test_false_positive_specks_are_removed_and_the_score_rises(tmp_path):
    cases = _cases(tmp_path, specks=True, small_truth=False)
    scorer = OofScorer(cases, labels="brats2021", challenge="BraTS-GLI")
    result = search_postprocessing(scorer, progress=False)
    assert result.score_after > result.score_before
    assert "wt" in result.rules.min_component_mm3  # the specks are oedema: WT components
    assert result.score_after == pytest.approx(_independent_score(cases, result.rules))
    assert result.score_before == pytest.approx(_independent_score(cases, type(result.rules)()))
    assert any(t["kept"] for t in result.trials)


def test_a_rule_that_would_delete_real_lesions_is_not_kept(tmp_path):
    # no false positives; the legacy Dice drops when the 16 mm^3 true lesion is removed
    cases = _cases(tmp_path, specks=False, small_truth=True)
    scorer = OofScorer(cases, labels="brats2021", challenge=None)
    result = search_postprocessing(scorer, progress=False)
    assert result.score_after == result.score_before == pytest.approx(1.0)
    assert result.rules.is_identity
    assert not any(t["kept"] for t in result.trials)
    assert min(t["score"] for t in result.trials) < result.score_before  # some would hurt


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_never_lowers_the_oof_score_on_noisy_predictions(tmp_path, seed):
    rng = np.random.default_rng(seed)
    cases = {}
    for i in range(3):
        truth = _tumour(10 * seed + i)
        pred = truth.copy()
        noise = rng.random(truth.shape) < 0.002
        pred[noise] = rng.choice([1, 2, 4], size=int(noise.sum()))
        pred[rng.random(truth.shape) < 0.01] = 0
        cases[f"c{i}"] = (
            _save(tmp_path / f"{i}p.nii.gz", pred),
            _save(tmp_path / f"{i}t.nii.gz", truth),
        )
    for challenge in ("BraTS-GLI", None):
        result = search_postprocessing(
            OofScorer(cases, labels="brats2021", challenge=challenge), progress=False
        )
        assert result.score_after >= result.score_before
        assert result.score_after == max(
            [result.score_before, *(t["score"] for t in result.trials)]
        )


def test_a_prediction_on_another_grid_is_named(tmp_path):
    pred = _save(tmp_path / "p.nii.gz", np.zeros((4, 4, 4), np.uint8))
    truth = _save(tmp_path / "t.nii.gz", np.zeros((5, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="case 'c0'.*differ in shape"):
        OofScorer({"c0": (pred, truth)}, labels="brats2021", challenge=None)

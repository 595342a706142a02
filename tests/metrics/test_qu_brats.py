"""QU-BraTS score: hand-computed values, ranking of uncertainty maps, reference conventions."""

from __future__ import annotations

import numpy as np
import pytest

from mrivol.metrics import (
    DEFAULT_QU_THRESHOLDS,
    dice_score,
    qu_brats_region,
    qu_brats_report,
    rescale_uncertainty,
)
from tests.metrics.conftest import random_blob_mask

EPS32 = float(np.finfo(np.float32).eps)


def _line(values) -> np.ndarray:
    return np.asarray(values).reshape(1, 1, -1)


def test_hand_computed_case():
    # voxel:        0  1  2   3   4   5  6   7
    true = _line([1, 1, 1, 1, 0, 0, 0, 0])
    pred = _line([1, 1, 1, 0, 1, 0, 0, 0])  # TP 0-2, FN 3, FP 4, TN 5-7
    unc = _line([0, 0, 60, 80, 80, 0, 30, 0])
    res = qu_brats_region(pred, true, unc, thresholds=(100, 75, 50, 25, 0))
    # tau=100 keeps all: Dice 6/8; tau<=75 drops 3 and 4 -> Dice 1; tau<=50 also drops TP 2
    # (FTP 1/3); tau<=25 also drops TN 6 (FTN 1/3).
    np.testing.assert_allclose(res.dice, [0.75, 1, 1, 1, 1])
    np.testing.assert_allclose(res.ftp_ratio, [0, 0, 1 / 3, 1 / 3, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(res.ftn_ratio, [0, 0, 0, 1 / 3, 1 / 3], atol=1e-6)
    # Trapezoids over tau/100 (step 0.25):
    assert res.auc_dice == pytest.approx(0.25 * (0.5 + 3 + 0.375))  # 0.96875
    assert res.auc_ftp == pytest.approx(0.25 * (1 / 6 + 1 / 3 + 1 / 3), abs=1e-6)  # 0.20833
    assert res.auc_ftn == pytest.approx(0.25 * (1 / 6 + 1 / 3), abs=1e-6)  # 0.125
    expected = (0.96875 + (1 - 0.25 * 5 / 6) + (1 - 0.125)) / 3
    assert res.score == pytest.approx(expected, abs=1e-6)  # 0.87847


@pytest.mark.parametrize(
    ("tau", "filtered"), [(50.0, 0.0), (49.9, 1.0)], ids=["equal-kept", "below-filtered"]
)
def test_voxel_at_threshold_is_kept_strictly_greater_is_filtered(tau, filtered):
    true, pred = _line([1, 1]), _line([1, 1])
    unc = _line([50.0, 50.0])  # reference: filtered where uncertainty > tau
    res = qu_brats_region(pred, true, unc, thresholds=(100.0, tau))
    assert res.ftp_ratio == pytest.approx((0.0, filtered), abs=1e-6)


def test_threshold_order_does_not_change_aucs():
    rng = np.random.default_rng(0)
    true = random_blob_mask(rng, (16, 16, 16))
    pred = random_blob_mask(rng, (16, 16, 16))
    unc = rng.uniform(0, 100, true.shape)
    a = qu_brats_region(pred, true, unc, thresholds=(0, 20, 50, 100))
    b = qu_brats_region(pred, true, unc, thresholds=(100, 50, 20, 0))
    assert (a.auc_dice, a.auc_ftp, a.auc_ftn) == pytest.approx((b.auc_dice, b.auc_ftp, b.auc_ftn))


def _case(seed: int):
    rng = np.random.default_rng(seed)
    shape = (24, 24, 24)
    true = random_blob_mask(rng, shape, fill=0.2)
    pred = true ^ (rng.random(shape) < 0.08)  # 8 % of voxels wrong
    wrong = pred != true
    return rng, true, pred, wrong


@pytest.mark.parametrize("seed", [0, 1, 2], ids=["seed0", "seed1", "seed2"])
def test_perfect_beats_random_beats_inverted(seed):
    rng, true, pred, wrong = _case(seed)
    perfect = np.where(wrong, 100.0, 0.0)
    random = rng.uniform(0, 100, true.shape)
    inverted = 100.0 - perfect
    scores = [qu_brats_region(pred, true, u).score for u in (perfect, random, inverted)]
    assert scores[0] > scores[1] > scores[2]
    # Closed forms for the default thresholds (step 0.25), d0 = unfiltered Dice:
    # perfect: Dice 1 below tau=100, FTP = FTN = 0; inverted: Dice 0, FTP = FTN = 1 below 100.
    d0 = dice_score(pred, true)
    assert scores[0] == pytest.approx((0.25 * (3.5 + 0.5 * d0) + 2) / 3)
    assert scores[2] == pytest.approx((0.125 * d0 + 0.125 + 0.125) / 3, abs=1e-6)


def test_reference_oracle_with_sklearn_auc():
    """Independent float32 re-derivation with sklearn's ``auc`` on decreasing thresholds."""
    from sklearn import metrics  # the pinned dev reference: missing fails, never skips

    rng, true, pred, _ = _case(3)
    unc = rng.uniform(0, 100, true.shape).round()  # ties with the thresholds
    brain = np.ones(true.shape, bool)
    brain[:2] = False
    taus = np.arange(0.0, 100.0 + EPS32, 100.0 / 40).tolist()[::-1]
    dice, ftp, ftn = [], [], []
    t32, p32, b32 = true.astype("float32"), pred.astype("float32"), brain.astype("float32")
    for tau in taus:
        keep = (unc <= tau).astype("float32")
        inter, union = np.sum(t32 * keep * p32 * keep), np.sum(t32 * keep) + np.sum(p32 * keep)
        dice.append(1.0 if inter == 0 and union == 0 else 2 * inter / union)
        tp, tn = t32 * p32 * b32, (1 - t32) * (1 - p32) * b32
        ftp.append((tp.sum() - (tp * keep).sum()) / (tp.sum() + EPS32))
        ftn.append((tn.sum() - (tn * keep).sum()) / (tn.sum() + EPS32))
    res = qu_brats_region(pred, true, unc, brain_mask=brain, thresholds=taus)
    assert res.auc_dice == pytest.approx(metrics.auc(taus, dice) / 100, abs=1e-6)
    assert res.auc_ftp == pytest.approx(metrics.auc(taus, ftp) / 100, abs=1e-6)
    assert res.auc_ftn == pytest.approx(metrics.auc(taus, ftn) / 100, abs=1e-6)


def test_report_regions_and_missing_map():
    y = np.zeros((8, 8, 8), np.int64)
    y[2:6, 2:6, 2:6] = 2
    y[3:5, 3:5, 3:5] = 4
    pred = y.copy()
    pred[pred == 4] = 1  # ET wrong
    maps = {"ET": np.where(y == 4, 100.0, 0.0), "TC": np.zeros(y.shape), "WT": np.zeros(y.shape)}
    rows = qu_brats_report(pred, y, maps, case_id="c7")
    assert [r["region"] for r in rows] == ["ET", "TC", "WT"]
    assert rows[1]["score"] == pytest.approx(1.0) and rows[2]["score"] == pytest.approx(1.0)
    assert rows[0]["auc_dice"] < 1.0  # at tau=100 ET Dice is 0
    with pytest.raises(ValueError, match="case 'c7'.*TC"):
        qu_brats_report(pred, y, {"ET": maps["ET"], "WT": maps["WT"]}, case_id="c7")


@pytest.mark.parametrize(
    ("unc", "thresholds", "match"),
    [
        pytest.param(_line([0, 150.0]), DEFAULT_QU_THRESHOLDS, "0-100", id="unc-range"),
        pytest.param(_line([0, np.nan]), DEFAULT_QU_THRESHOLDS, "0-100", id="unc-nan"),
        pytest.param(_line([0, 10.0]), (100, 0, 50), "monotonic", id="thr-order"),
        pytest.param(_line([0, 10.0]), (120, 0), "0, 100", id="thr-range"),
    ],
)
def test_invalid_inputs_raise(unc, thresholds, match):
    with pytest.raises(ValueError, match=match):
        qu_brats_region(_line([1, 0]), _line([1, 0]), unc, thresholds=thresholds)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({}, [0.0, 50.0, 100.0], id="data-range"),
        pytest.param({"min_value": 0.0, "max_value": 1.0}, [20.0, 40.0, 60.0], id="fixed"),
        pytest.param({"max_value": 0.4}, [0.0, 100.0, 100.0], id="clipped"),
    ],
)
def test_rescale_uncertainty(kwargs, expected):
    np.testing.assert_allclose(rescale_uncertainty([0.2, 0.4, 0.6], **kwargs), expected)

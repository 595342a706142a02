"""BraTS regions and per-case segmentation metrics (Dice, HD95, sensitivity, specificity, ml)."""

from __future__ import annotations

import numpy as np
import pytest

from mrivol.metrics import (
    BRATS2021_MAX_HD95,
    BRATS2023_MAX_HD95,
    binary_segmentation_metrics,
    brats_region_masks,
    default_max_hd95,
    hd95_mm,
    segmentation_report,
)

CONVENTIONS = [("brats2021", 4), ("brats2023", 3)]


def _label_map(et_label: int) -> np.ndarray:
    """A 16^3 map: oedema shell (2), necrotic core (1) and enhancing rim (``et_label``)."""
    y = np.zeros((16, 16, 16), np.int16)
    y[2:14, 2:14, 2:14] = 2
    y[4:12, 4:12, 4:12] = et_label
    y[6:10, 6:10, 6:10] = 1
    return y


@pytest.mark.parametrize(
    ("labels", "et"), [("brats2021", 4), ("brats2023", 3)], ids=["2021", "2023"]
)
def test_region_masks_are_nested_and_match_labels(labels, et):
    y = _label_map(et)
    masks = brats_region_masks(y, labels=labels)
    assert list(masks) == ["ET", "TC", "WT"]
    np.testing.assert_array_equal(masks["ET"], y == et)
    np.testing.assert_array_equal(masks["TC"], (y == 1) | (y == et))
    np.testing.assert_array_equal(masks["WT"], y > 0)
    assert not np.any(masks["ET"] & ~masks["TC"]) and not np.any(masks["TC"] & ~masks["WT"])


@pytest.mark.parametrize(
    ("labels", "et", "hint"),
    [("brats2021", 3, "brats2023"), ("brats2023", 4, "brats2021")],
    ids=["2023-map-as-2021", "2021-map-as-2023"],
)
def test_wrong_convention_raises_with_hint(labels, et, hint):
    with pytest.raises(ValueError, match=hint):
        brats_region_masks(_label_map(et), labels=labels, name="case BraTS-001")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(np.full((4, 4, 4), 0.5), "non-integer", id="probabilities"),
        pytest.param(np.zeros((4, 4)), "3D", id="2d"),
    ],
)
def test_invalid_label_maps_raise(value, match):
    with pytest.raises(ValueError, match=match):
        brats_region_masks(value)


def test_unknown_convention_raises():
    with pytest.raises(ValueError, match="brats2021"):
        default_max_hd95("brats2019")


@pytest.mark.parametrize(
    ("pred_fill", "true_fill", "expected"),
    [
        pytest.param(False, False, {"dice": 1.0, "hd95_mm": 0.0, "sensitivity": 1.0}, id="both"),
        pytest.param(True, False, {"dice": 0.0, "hd95_mm": 99.0, "sensitivity": 0.0}, id="no-true"),
        pytest.param(False, True, {"dice": 0.0, "hd95_mm": 99.0, "sensitivity": 0.0}, id="no-pred"),
    ],
)
def test_empty_mask_rules(pred_fill, true_fill, expected):
    pred, true = np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), bool)
    pred[2:4, 2:4, 2:4] = pred_fill
    true[2:4, 2:4, 2:4] = true_fill
    got = binary_segmentation_metrics(pred, true, spacing=(1, 1, 1), max_hd95=99.0)
    assert {k: got[k] for k in expected} == expected


def test_hand_computed_counts_and_volumes():
    # 10 x 1 x 1 line: truth voxels 0..5, prediction voxels 3..7 -> TP 3, FP 2, FN 3, TN 2.
    true = np.zeros((10, 1, 1), bool)
    pred = np.zeros((10, 1, 1), bool)
    true[0:6], pred[3:8] = True, True
    got = binary_segmentation_metrics(pred, true, spacing=(2.0, 1.5, 1.0))
    assert got["dice"] == pytest.approx(2 * 3 / (5 + 6))
    assert got["sensitivity"] == pytest.approx(3 / 6)
    assert got["specificity"] == pytest.approx(2 / 4)
    assert got["pred_volume_ml"] == pytest.approx(5 * 3.0 / 1000)
    assert got["true_volume_ml"] == pytest.approx(6 * 3.0 / 1000)
    # Max surface distance: truth end 3 voxels from the prediction along the 2 mm axis.
    assert hd95_mm(pred, true, spacing=(2.0, 1.5, 1.0), percentile=100) == pytest.approx(6.0)
    assert 0.0 < got["hd95_mm"] <= 6.0


@pytest.mark.parametrize(
    ("labels", "et"), [("brats2021", 4), ("brats2023", 3)], ids=["2021", "2023"]
)
def test_report_rows_and_default_max(labels, et):
    true = _label_map(et)
    pred = true.copy()
    pred[pred == et] = 1  # ET missed entirely, TC and WT unchanged
    rows = segmentation_report(pred, true, spacing=(1, 1, 1), labels=labels, case_id="c1")
    assert [r["region"] for r in rows] == ["ET", "TC", "WT"]
    assert all(r["case"] == "c1" for r in rows)
    et_row, tc_row, wt_row = rows
    assert et_row["dice"] == 0.0 and et_row["pred_volume_ml"] == 0.0
    assert et_row["hd95_mm"] == default_max_hd95(labels)
    assert et_row["true_volume_ml"] == pytest.approx((8**3 - 4**3) / 1000)
    for row in (tc_row, wt_row):
        assert (row["dice"], row["hd95_mm"], row["sensitivity"]) == (1.0, 0.0, 1.0)
    assert {BRATS2021_MAX_HD95, BRATS2023_MAX_HD95} == {373.1287, 374.0}


def test_report_max_hd95_override_and_errors_name_the_case():
    true = _label_map(4)
    rows = segmentation_report(np.zeros_like(true), true, spacing=(1, 1, 1), max_hd95=500.0)
    assert [r["hd95_mm"] for r in rows] == [500.0, 500.0, 500.0]
    with pytest.raises(ValueError, match="case 'BraTS-042'"):
        segmentation_report(true[:-1], true, spacing=(1, 1, 1), case_id="BraTS-042")
    with pytest.raises(ValueError, match="case 'BraTS-042'.*spacing"):
        segmentation_report(true, true, spacing=(1, 1), case_id="BraTS-042")

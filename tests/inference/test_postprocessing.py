"""BraTS post-processing rules: what each rule changes, measured in mm^3, nesting kept."""

from __future__ import annotations

import numpy as np
import pytest

from mrivol.inference.postprocessing import (
    Postprocessing,
    apply_postprocessing,
    read_postprocessing,
    write_postprocessing,
)


def _case() -> np.ndarray:
    """A 2021-convention map: a big tumour (ED, NCR core, ET rim) and a 2-voxel ED speck."""
    y = np.zeros((20, 20, 20), np.uint8)
    y[2:10, 2:10, 2:10] = 2
    y[4:8, 4:8, 4:8] = 4
    y[5:7, 5:7, 5:7] = 1
    y[15, 15, 15:17] = 2  # 2 voxels
    return y


def test_empty_rules_change_nothing():
    y = _case()
    out = apply_postprocessing(y, Postprocessing(), spacing=(1, 1, 1))
    assert np.array_equal(out, y) and Postprocessing().is_identity


@pytest.mark.parametrize(
    ("spacing", "threshold", "speck_removed"),
    [
        ((1, 1, 1), 3.0, True),
        ((1, 1, 1), 2.0, False),
        ((2, 1, 1), 4.0, False),
        ((2, 1, 1), 5.0, True),
    ],
    ids=["1mm-below", "1mm-equal-kept", "2mm-equal-kept", "2mm-below"],
)
def test_wt_components_below_the_volume_go(spacing, threshold, speck_removed):
    out = apply_postprocessing(
        _case(), Postprocessing({"wt": threshold}), spacing=spacing, labels="brats2021"
    )
    assert (out[15, 15, 15:17] == 0).all() == speck_removed
    assert (out[2:10, 2:10, 2:10] > 0).all()  # the big tumour is never touched


def test_tc_and_et_components_keep_the_nesting():
    y = _case()
    y[12, 2, 2] = 4  # a one-voxel ET (and TC) island inside an ED island
    y[12, 1:4, 1:4][y[12, 1:4, 1:4] == 0] = 2
    tc = apply_postprocessing(y, Postprocessing({"tc": 2.0}), spacing=(1, 1, 1))
    assert tc[12, 2, 2] == 2  # the TC island became oedema: still whole tumour
    et = apply_postprocessing(y, Postprocessing({"et": 2.0}), spacing=(1, 1, 1))
    assert et[12, 2, 2] == 1  # the ET island became necrosis: still tumour core
    assert (et[4:8, 4:8, 4:8] == tc[4:8, 4:8, 4:8]).all()


@pytest.mark.parametrize("labels", ["brats2021", "brats2023"])
def test_small_total_et_becomes_necrosis(labels):
    y = _case()
    et = 4 if labels == "brats2021" else 3
    y[y == 4] = et
    n_et = int((y == et).sum())  # 56 voxels
    keep = apply_postprocessing(
        y, Postprocessing(et_min_total_mm3=n_et), spacing=(1, 1, 1), labels=labels
    )
    gone = apply_postprocessing(
        y, Postprocessing(et_min_total_mm3=n_et + 1), spacing=(1, 1, 1), labels=labels
    )
    assert (keep == et).sum() == n_et
    assert (gone == et).sum() == 0 and (gone == 1).sum() == (y == 1).sum() + n_et


def test_rules_round_trip_through_json(tmp_path):
    rules = Postprocessing({"et": 50.0, "wt": 100.0}, 250.0)
    path = write_postprocessing(rules, tmp_path / "pp.json", oof_score_before=0.5)
    assert read_postprocessing(path) == rules
    assert "wt components < 100" in rules.describe()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_component_mm3": {"ncr": 5.0}},
        {"min_component_mm3": {"wt": 0.0}},
        {"et_min_total_mm3": -1},
    ],
    ids=["unknown-region", "zero-volume", "negative-et"],
)
def test_invalid_rules_are_refused(kwargs):
    with pytest.raises(ValueError, match="post-processing"):
        Postprocessing(**kwargs)


def test_a_file_without_rules_names_itself(tmp_path):
    bad = tmp_path / "pp.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="pp.json"):
        read_postprocessing(bad)

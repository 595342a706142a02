"""Pooled OOF metrics and the fold spread, against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mrivol.crossval.cv_metrics import classification_cv_metrics, grid_segmentation_cv_metrics

ROWS = [  # two folds, two cases each, two regions
    {"case": "a", "fold": 0, "region": "TC", "dice": 0.9, "hd95_mm": 2.0},
    {"case": "a", "fold": 0, "region": "WT", "dice": 0.8, "hd95_mm": 4.0},
    {"case": "b", "fold": 0, "region": "TC", "dice": 0.7, "hd95_mm": 6.0},
    {"case": "b", "fold": 0, "region": "WT", "dice": 0.6, "hd95_mm": 8.0},
    {"case": "c", "fold": 1, "region": "TC", "dice": 0.5, "hd95_mm": 1.0},
    {"case": "c", "fold": 1, "region": "WT", "dice": 0.4, "hd95_mm": 3.0},
    {"case": "d", "fold": 1, "region": "TC", "dice": 0.3, "hd95_mm": 5.0},
    {"case": "d", "fold": 1, "region": "WT", "dice": 0.2, "hd95_mm": 7.0},
]


def test_pooled_segmentation_metrics_and_fold_spread(tmp_path):
    scores = grid_segmentation_cv_metrics(ROWS, out_dir=tmp_path)
    m = scores.metrics
    assert m["cv_mean_dice"] == pytest.approx(0.55)
    assert m["cv_dice_tc"] == pytest.approx(0.6) and m["cv_dice_wt"] == pytest.approx(0.5)
    assert m["cv_hd95"] == pytest.approx(4.5)
    assert scores.per_fold["cv_fold_mean_dice"] == pytest.approx({0: 0.75, 1: 0.35})
    assert m["cv_fold_mean_dice_mean"] == pytest.approx(0.55)
    assert m["cv_fold_mean_dice_std"] == pytest.approx(np.std([0.75, 0.35], ddof=1))
    assert (tmp_path / "oof_per_case.csv").is_file() and (tmp_path / "oof_boxplot.png").is_file()


def test_one_fold_has_no_spread(tmp_path):
    m = grid_segmentation_cv_metrics(ROWS[:4], out_dir=tmp_path).metrics
    assert "cv_fold_mean_dice_std" not in m and m["cv_fold_mean_dice_mean"] == pytest.approx(0.75)


def test_pooled_classification_metrics(tmp_path):
    names = ["CN", "MCI", "AD"]
    # fold 0: both right; fold 1: the AD case called MCI
    cases = [
        ("a", 0, 0, [0.8, 0.1, 0.1]),
        ("b", 0, 1, [0.2, 0.7, 0.1]),
        ("c", 1, 2, [0.1, 0.6, 0.3]),
        ("d", 1, 0, [0.9, 0.05, 0.05]),
    ]
    rows = []
    for case, fold, label, p in cases:
        row = {"case": case, "fold": fold, "label": label, "predicted": int(np.argmax(p))}
        rows.append({**row, **{f"prob_{c}": v for c, v in zip(names, p, strict=True)}})
    scores = classification_cv_metrics(rows, class_names=names, out_dir=tmp_path)
    m = scores.metrics
    assert m["cv_recall_CN"] == 1.0 and m["cv_recall_MCI"] == 1.0 and m["cv_recall_AD"] == 0.0
    assert m["cv_balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["cv_accuracy"] == pytest.approx(0.75)
    assert scores.per_fold["cv_fold_balanced_accuracy"] == pytest.approx({0: 1.0, 1: 0.5})
    assert (tmp_path / "oof_confusion_matrix.png").is_file()
    assert (tmp_path / "oof_per_case.csv").read_text().count("\n") == 5

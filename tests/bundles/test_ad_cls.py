"""The ad_cls bundle, run for real: two short epochs on tiny AD phantoms.

Checks what a user relies on: per-class metrics each epoch in MLflow, Grad-CAM++ PNG and NIfTI
maps, the classification report files, offline-verified metadata, and that DCGAN (synthetic)
samples only ever reach the training set.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrivol.data import to_datalist
from mrivol.paths import bundle_dir
from tests.conftest import AD_CLS_TINY_OVERRIDES, train_in_store

BUNDLE = bundle_dir("ad_cls")


@pytest.fixture(scope="module")
def trained(tiny_ad_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    return train_in_store(
        tmp_path_factory,
        bundle="ad_cls",
        net="densenet_attention",
        data=tiny_ad_manifest,
        epochs=2,
        profile="cpu",
        overrides=AD_CLS_TINY_OVERRIDES,
    )


def test_per_class_metrics_logged_each_epoch(trained):
    result, uri = trained
    client = mlflow.MlflowClient(uri)
    metrics = client.get_run(result.run_id).data.metrics
    for key in ("val_balanced_accuracy", "val_recall_CN", "val_recall_MCI", "val_recall_AD"):
        history = client.get_metric_history(result.run_id, key)
        assert len(history) == 2, key
        assert all(0.0 <= m.value <= 1.0 for m in history)
    n_val = int(client.get_run(result.run_id).data.params["n_val"])
    correct = metrics["val_accuracy"] * n_val  # a share of the validation scans
    assert correct == pytest.approx(round(correct), abs=1e-6) and 0 <= round(correct) <= n_val
    assert "train_loss" in metrics


def test_best_epoch_report_matches_logged_balanced_accuracy(trained):
    """The per-case CSV of the best epoch reproduces the best logged balanced accuracy."""
    result, uri = trained
    history = mlflow.MlflowClient(uri).get_metric_history(result.run_id, "val_balanced_accuracy")
    rows = pd.read_csv(result.output_dir / "val_per_case.csv")
    recalls = [(g["pred"] == c).mean() for c, g in rows.groupby("label")]
    assert float(np.mean(recalls)) == pytest.approx(max(m.value for m in history))


def test_gradcam_maps_written_and_logged(trained):
    result, uri = trained
    maps = sorted((result.output_dir / "gradcam").glob("*.nii.gz"))
    assert maps and len(maps) == len(list((result.output_dir / "gradcam").glob("*.png")))
    cam = nib.load(maps[0]).get_fdata()
    assert cam.shape == tuple(AD_CLS_TINY_OVERRIDES["input_size"])
    assert np.isfinite(cam).all() and cam.min() >= 0.0 and cam.max() <= 1.0 + 1e-6
    artifacts = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(result.run_id)}
    assert any(p.endswith(".png") and "confusion" not in p for p in artifacts)
    assert {"confusion_matrix.png", "val_per_case.csv", "model.pt"} <= artifacts


def test_per_case_csv_lists_only_real_validation_subjects(trained, tiny_ad_manifest):
    result, _ = trained
    rows = pd.read_csv(result.output_dir / "val_per_case.csv")
    val = {i["case_id"] for i in to_datalist(tiny_ad_manifest, fold=0, split="val")}
    assert set(rows["case_id"]) == val

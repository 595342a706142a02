"""The brats_seg bundle, run for real: one short training on tiny cases, then evaluate and infer.

Checks what a user relies on: the MLflow run holds the params, metrics and artifacts the
README promises; evaluation logs into the same run; inference writes label maps on each input's
own grid; the metadata verifies offline; the stock `python -m monai.bundle run` trains.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pytest

from mrivol.data import read_manifest
from mrivol.engine import bundle_dir, evaluate, infer, train
from tests.conftest import TINY_OVERRIDES, train_in_store

BUNDLE = bundle_dir("brats_seg")


@pytest.fixture(scope="module")
def trained(tiny_brats_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """Train brats_seg for two epochs on the tiny cases; return (result, tracking uri)."""
    return train_in_store(
        tmp_path_factory,
        bundle="brats_seg",
        data=tiny_brats_manifest,
        epochs=2,
        profile="cpu",
        overrides=TINY_OVERRIDES,
    )


def test_run_is_named_and_finished(trained):
    result, uri = trained
    run = mlflow.MlflowClient(uri).get_run(result.run_id)
    assert re.fullmatch(r"brats_seg-unet-fold0-\d{8}-\d{6}", run.info.run_name)
    assert run.info.status == "FINISHED"


def test_run_params_cover_hyperparameters_and_provenance(trained, tiny_brats_manifest):
    result, uri = trained
    params = mlflow.MlflowClient(uri).get_run(result.run_id).data.params
    expected = {
        "network": "unet",
        "profile": "cpu",
        "fold": "0",
        "n_train": "4",
        "n_val": "2",
        "learning_rate": "0.003",
        "max_epochs": "2",
        "roi_size": "[32, 32, 32]",
        "network_def.channels": "[16, 32, 64, 128]",
        "base_loss._target_": "DiceCELoss",
    }
    assert {k: params.get(k) for k in expected} == expected
    assert re.fullmatch(r"[0-9a-f]{64}", params["manifest_hash"])
    assert params["git_commit"]
    assert params["torch_version"].startswith("2.")


def test_run_metrics_per_epoch(trained):
    result, uri = trained
    client = mlflow.MlflowClient(uri)
    metrics = client.get_run(result.run_id).data.metrics
    per_epoch = [
        "train_loss",
        "epoch_seconds",
        "samples_per_s",
        "val_mean_dice",
        "val_dice_tc",
        "val_dice_wt",
        "val_dice_et",
        "val_hd95",
    ]
    for name in per_epoch:
        history = client.get_metric_history(result.run_id, name)
        assert [m.step for m in history] == [1, 2], name
    assert 0.0 <= metrics["val_mean_dice"] <= 1.0
    assert metrics["val_hd95"] >= 0.0
    assert metrics["wall_seconds"] > 0.0


def test_run_artifacts(trained):
    result, uri = trained
    names = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(result.run_id)}
    assert {"config.yaml", "model.pt", "val_per_case.csv", "val_overlay.png"} <= names
    csv = (result.output_dir / "val_per_case.csv").read_text().splitlines()
    assert csv[0].startswith("case_id,val_dice_tc,val_dice_wt,val_dice_et")
    assert len(csv) == 1 + 2  # header + two validation cases


def test_evaluate_logs_into_the_training_run(trained, tmp_path):
    result, uri = trained
    metrics = evaluate(bundle="brats_seg", run=result.run_id, out=tmp_path, tracking_uri=uri)
    assert 0.0 <= metrics["val_mean_dice"] <= 1.0
    logged = mlflow.MlflowClient(uri).get_run(result.run_id).data.metrics
    assert logged["eval_mean_dice"] == pytest.approx(metrics["val_mean_dice"])
    assert (tmp_path / "val_per_case.csv").is_file()


def test_infer_writes_labels_on_each_input_grid(trained, tiny_brats_manifest, tmp_path):
    result, uri = trained
    written = infer(
        bundle="brats_seg",
        run=result.run_id,
        input=tiny_brats_manifest,
        out=tmp_path,
        tracking_uri=uri,
    )
    df = read_manifest(tiny_brats_manifest)
    assert [p.name for p in written] == [f"{c}_seg.nii.gz" for c in sorted(df["case_id"])]
    for path, (_, row) in zip(written, df.sort_values("case_id").iterrows(), strict=True):
        pred, ref = nib.load(path), nib.load(row["t1"])
        assert pred.shape == ref.shape
        np.testing.assert_allclose(pred.affine, ref.affine, atol=1e-4)
        assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2, 4}


def test_stock_monai_bundle_run_trains_one_epoch(tiny_brats_manifest, isolated_store):
    """The command from the bundle's docs/README.md, with tiny-data overrides appended."""
    configs = BUNDLE / "configs"
    files = [
        configs / f
        for f in ("common.yaml", "train.yaml", "profiles/cpu.yaml", "networks/unet.yaml")
    ]
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str([str(f) for f in files]),
        "--meta_file",
        str(configs / "metadata.json"),
        "--bundle_root",
        str(BUNDLE),
        "--output_dir",
        str(isolated_store / "stock"),
        "--manifest",
        str(tiny_brats_manifest),
        "--max_epochs",
        "1",
        "--spacing",
        "[3.0, 3.0, 3.0]",
        "--roi_size",
        "[32, 32, 32]",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (isolated_store / "stock" / "checkpoints" / "model_final.pt").is_file()


def test_trains_from_a_preprocessed_manifest(tiny_brats_manifest, tmp_path):
    """mrivol preprocess -> its new manifest -> brats_seg trains on it (one epoch)."""
    from mrivol.engine.preprocess import load_preprocess_config, preprocess_manifest

    config = load_preprocess_config()
    config["resample"] = {"axcodes": "RAS", "pixdim": [3.0, 3.0, 3.0]}
    result = preprocess_manifest(
        tiny_brats_manifest,
        tmp_path / "pre",
        steps=["n4", "resample"],
        config=config,
        progress=False,
    )
    assert not result.failed
    pre = tmp_path / "pre" / "manifest.csv"
    assert len(read_manifest(pre)) == len(read_manifest(tiny_brats_manifest))
    run = train(bundle="brats_seg", data=pre, epochs=1, profile="cpu", overrides=TINY_OVERRIDES)
    status = mlflow.MlflowClient(run.tracking_uri).get_run(run.run_id).info.status
    assert status == "FINISHED" and run.best_metrics["val_mean_dice"] >= 0.0

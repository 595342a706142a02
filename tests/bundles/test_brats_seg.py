"""The brats_seg bundle, run for real: one short training on tiny cases, then evaluate and infer.

Checks what a user relies on: the MLflow run holds the params, metrics and artifacts the
README promises; evaluation logs into the same run; inference writes label maps on each input's
own grid; the metadata verifies offline; the stock `python -m monai.bundle run` trains.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrivol.data import read_manifest
from mrivol.evaluation import evaluate
from mrivol.inference import infer
from mrivol.metrics import BRATS2021_MAX_HD95
from mrivol.paths import bundle_dir
from mrivol.training import train
from tests.conftest import TINY_OVERRIDES, train_tiny_brats

BUNDLE = bundle_dir("brats_seg")


@pytest.fixture(scope="module")
def trained(tiny_brats_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """Train brats_seg for two epochs on the tiny cases; return (result, tracking uri)."""
    return train_tiny_brats(
        tmp_path_factory, tiny_brats_manifest, epochs=2, system_metrics=True,
        system_metrics_interval=0.5,
    )  # fmt: skip


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
        "segmentation_loss._target_": "DiceCELoss",
        "base_loss._target_": "mrivol.losses.BoundaryCompoundLoss",
        "boundary_loss_weight": "0.0",
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
        "val_lesionwise_dice",
        "val_lesionwise_dice_tc",
        "val_lesionwise_dice_wt",
        "val_lesionwise_dice_et",
    ]
    for name in per_epoch:
        history = client.get_metric_history(result.run_id, name)
        assert [m.step for m in history] == [1, 2], name
    assert 0.0 <= metrics["val_mean_dice"] <= 1.0
    assert 0.0 <= metrics["val_hd95"] <= BRATS2021_MAX_HD95  # the empty-mask penalty at most
    assert metrics["wall_seconds"] > 0.0
    regions = [metrics[f"val_lesionwise_dice_{r}"] for r in ("tc", "wt", "et")]
    assert all(0.0 <= v <= 1.0 for v in regions)
    assert metrics["val_lesionwise_dice"] == pytest.approx(np.mean(regions), abs=1e-5)


def test_run_tracks_its_datasets_and_system_metrics(trained, tiny_brats_manifest):
    result, uri = trained
    client = mlflow.MlflowClient(uri)
    run = client.get_run(result.run_id)
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"manifest-fold0-train", "manifest-fold0-val"}
    digest = run.data.params["manifest_hash"][:16]  # the manifest's content hash
    for name, context, rows in (("train", "training", 4), ("val", "validation", 2)):
        item = inputs[f"manifest-fold0-{name}"]
        assert item.dataset.digest == digest
        assert {t.key: t.value for t in item.tags}["mlflow.data.context"] == context
        assert json.loads(item.dataset.profile)["num_rows"] == rows
        assert json.loads(item.dataset.source)["uri"].endswith(tiny_brats_manifest.name)
    for name in ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"):
        steps = [m.step for m in client.get_metric_history(result.run_id, name)]
        assert len(steps) >= 2 and steps == sorted(set(steps)), (name, steps)


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
    assert logged["eval_lesionwise_dice"] == pytest.approx(metrics["val_lesionwise_dice"])
    assert (tmp_path / "val_per_case.csv").is_file()
    # on the original grids: the bundle's lesion-wise rules (BraTS-GLI 2023) per region
    cases = pd.read_csv(tmp_path / "seg_metrics.csv")
    for region in ("tc", "wt", "et"):
        values = cases.loc[cases["region"] == region, "lesionwise_dice"]
        assert len(values) == 2
        assert logged[f"eval_lesionwise_dice_{region}"] == pytest.approx(values.mean())
        assert f"eval_lesionwise_hd95_{region}" in logged


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


def test_trains_from_a_preprocessed_manifest(tiny_brats_manifest, tmp_path):
    """mrivol preprocess -> its new manifest -> brats_seg trains on it (one epoch)."""
    from mrivol.preprocessing.runner import load_preprocess_config, preprocess_manifest

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
    client = mlflow.MlflowClient(run.tracking_uri)
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["n_val"] == "2"  # the preprocessed manifest kept the fold
    history = client.get_metric_history(run.run_id, "val_mean_dice")
    assert [m.step for m in history] == [1]
    assert run.best_metrics["val_mean_dice"] == pytest.approx(history[0].value)
    assert 0.0 <= history[0].value <= 1.0


@pytest.mark.parametrize("overflow", ["rate", "disk"])
def test_a_cache_budget_below_the_data_set_says_so_and_the_run_finishes(
    tiny_brats_manifest, capsys, overflow
):
    """A 0.5 MiB budget holds one of the four tiny training cases (~0.25 MiB each, compact)."""
    run = train(bundle="brats_seg", data=tiny_brats_manifest, epochs=1, profile="cpu",
                overrides={**TINY_OVERRIDES, "cache_budget_mb": 0.5, "cache_overflow": overflow,
                           "system_metrics": False, "log_model": False})  # fmt: skip
    err = capsys.readouterr().err
    assert "train cache: 1 of 4 cases in memory" in err
    if overflow == "disk":
        assert "are preprocessed once into the disk cache" in err
    else:
        assert "are preprocessed every epoch. Raise cache_budget_mb" in err
    logged = mlflow.MlflowClient(run.tracking_uri).get_run(run.run_id)
    assert logged.info.status == "FINISHED" and "val_mean_dice" in logged.data.metrics

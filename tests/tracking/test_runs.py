"""Run names, params flattening and the default MLflow store."""

from __future__ import annotations

import re

import mlflow
import pytest

from mrivol.tracking import default_tracking_uri, ensure_experiment, flatten_params, make_run_name
from mrivol.tracking.runs import MAX_PARAM_CHARS, runs_url


def test_run_name_format():
    name = make_run_name("brats_seg", "unetr", 3, timestamp=0)
    assert re.fullmatch(r"brats_seg-unetr-fold3-\d{8}-\d{6}", name)


def test_default_uri_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert default_tracking_uri() == "http://127.0.0.1:5999"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("MRIVOL_ROOT", str(tmp_path))
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert (tmp_path / "mlruns").is_dir()


def test_flatten_params_nested_dicts_and_lists_of_dicts():
    config = {
        "lr": 0.01,
        "network_def": {"_target_": "UNet", "channels": [16, 32]},
        "transforms": [{"_target_": "LoadImaged"}, {"_target_": "Spacingd", "pixdim": [2, 2, 2]}],
        "long": "x" * (MAX_PARAM_CHARS + 50),
    }
    flat = flatten_params(config)
    assert flat["lr"] == "0.01"
    assert flat["network_def._target_"] == "UNet"
    assert flat["network_def.channels"] == "[16, 32]"
    assert flat["transforms.1.pixdim"] == "[2, 2, 2]"
    assert len(flat["long"]) == MAX_PARAM_CHARS


def test_sqlite_experiment_keeps_artifacts_next_to_the_database(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp_id = ensure_experiment("brats_seg", uri)
    assert ensure_experiment("brats_seg", uri) == exp_id  # idempotent
    location = mlflow.MlflowClient(uri).get_experiment(exp_id).artifact_location
    assert location == (tmp_path / "artifacts").as_uri()


@pytest.mark.parametrize("port", [5000, 8080])
def test_runs_url_points_at_training_runs(port):
    assert runs_url("7", port=port) == f"http://127.0.0.1:{port}/#/experiments/7/runs"

"""Three trainings started together on one store all finish with everything logged.

On a fresh sqlite store (the default; :mod:`mrivol.tracking.store` creates and migrates it once
under a file lock, in WAL mode) and on one ``mlflow server`` backed by PostgreSQL (the shared
lab server). Slow: six short trainings, three at a time, on two cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest

from mrivol.tracking.server import mlflow_server
from tests.conftest import mrivol_process, tiny_set_args
from tests.tracking.test_server import postgres_cluster, postgres_unavailable

FOLDS = (0, 1, 2)


def _train_three(env: dict[str, str], manifest: Path) -> None:
    procs = [
        mrivol_process(
            [
                "train",
                "--data",
                str(manifest),
                "--fold",
                str(fold),
                "--epochs",
                "2",
                *tiny_set_args(),
            ],
            env,
        )  # fmt: skip
        for fold in FOLDS
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]


def _check_everything_logged(uri: str) -> None:
    client = mlflow.MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "brats_seg"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["fold"] for r in runs) == [str(f) for f in FOLDS]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"manifest_hash", "config_hash", "learning_rate", "n_train"} <= set(run.data.params)
        for name in ("train_loss", "val_mean_dice", "val_lesionwise_dice"):
            history = client.get_metric_history(run.info.run_id, name)
            assert sorted(m.step for m in history) == [1, 2], (run.info.run_name, name)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "model.pt", "val_per_case.csv"} <= artifacts
        assert len(run.inputs.dataset_inputs) == 2


@pytest.mark.slow
def test_three_trainings_on_a_fresh_sqlite_store(tiny_brats_manifest, store_env, tmp_path):
    assert not Path(store_env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")).exists()
    _train_three(store_env, tiny_brats_manifest)
    _check_everything_logged(store_env["MLFLOW_TRACKING_URI"])


@pytest.mark.slow
def test_three_trainings_on_one_postgresql_backed_server(tiny_brats_manifest, store_env, tmp_path):
    if (reason := postgres_unavailable()) and os.environ.get("MRIVOL_REQUIRE_POSTGRES") != "1":
        pytest.skip(f"PostgreSQL backend not tested: {reason}")
    with postgres_cluster() as backend, mlflow_server(backend, tmp_path / "artifacts") as server:
        env = {**store_env, "MLFLOW_TRACKING_URI": server.url}
        _train_three(env, tiny_brats_manifest)
        _check_everything_logged(server.url)

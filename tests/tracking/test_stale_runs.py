"""Runs left RUNNING by a killed process are found and marked KILLED; live ones are not."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pytest

from mrivol.tracking.stale_runs import (
    HOST_TAG,
    PID_TAG,
    STALE_TAG,
    START_TAG,
    find_stale_runs,
    process_tags,
)
from tests.conftest import run_mrivol, tiny_set_args


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_fix_stale_marks_only_runs_whose_process_is_gone(store_env):
    client = mlflow.MlflowClient(store_env["MLFLOW_TRACKING_URI"])
    experiment = client.create_experiment("brats_seg")
    mine = process_tags()
    tags = {
        "killed": {**mine, PID_TAG: str(_dead_pid())},
        "recycled": {**mine, START_TAG: f"{float(mine[START_TAG]) - 3600:.3f}"},  # pid reused
        "alive": mine,
        "other-host": {**mine, HOST_TAG: "some-other-node", PID_TAG: str(_dead_pid())},
        "untagged": {},
    }
    ids = {name: client.create_run(experiment, run_name=name, tags=t).info.run_id
           for name, t in tags.items()}  # fmt: skip

    listed = run_mrivol(["runs"], store_env)
    assert "2 stale run(s)" in listed and "killed (" in listed and "recycled (" in listed
    assert all(client.get_run(i).info.status == "RUNNING" for i in ids.values())  # only listed

    out = run_mrivol(["runs", "--fix-stale", "--experiment", "brats_seg"], store_env)
    assert "2 stale run(s)" in out
    status = {name: client.get_run(i).info.status for name, i in ids.items()}
    assert status == {"killed": "KILLED", "recycled": "KILLED", "alive": "RUNNING",
                      "other-host": "RUNNING", "untagged": "RUNNING"}  # fmt: skip
    assert "ended without closing the run" in client.get_run(ids["killed"]).data.tags[STALE_TAG]
    assert find_stale_runs(client, [experiment]) == []


@pytest.mark.slow
def test_the_next_train_marks_a_killed_run(store_env, tiny_brats_manifest):
    """A run whose process died (no checkpoint to resume) is KILLED once `mrivol train` runs."""
    client = mlflow.MlflowClient(store_env["MLFLOW_TRACKING_URI"])
    experiment = client.create_experiment("brats_seg")
    dead = {**process_tags(), PID_TAG: str(_dead_pid())}
    stale = client.create_run(experiment, run_name="killed", tags=dead).info.run_id
    out = run_mrivol(["train", "--data", str(tiny_brats_manifest), "--epochs", "1",
                      "--set", "log_model=false", *tiny_set_args()], store_env)  # fmt: skip
    assert "run killed was left RUNNING by a killed process: marked KILLED" in out
    assert client.get_run(stale).info.status == "KILLED"
    (new,) = [r for r in client.search_runs([experiment]) if r.info.run_id != stale]
    assert new.info.status == "FINISHED"

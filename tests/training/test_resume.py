"""Exact resume: ``kill -9`` mid-training, the same command again, the same losses as without."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import mlflow
import pytest
import torch

from tests.conftest import experiment_runs, mrivol_process, run_mrivol, tiny_set_args


def _epoch_of(checkpoint: Path) -> int:
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError):
        return 0
    return int(state["trainer"]["iteration"] // state["trainer"]["epoch_length"])


def test_kill_after_epoch_two_then_resume_matches_uninterrupted(
    tiny_brats_manifest, store_env, tmp_path
):
    args = ["train", "--data", str(tiny_brats_manifest), "--epochs", "4", *tiny_set_args()]
    reference_env = {**store_env, "MRIVOL_RUNS": str(tmp_path / "reference")}
    reference_env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'reference.db'}"
    run_mrivol(args, reference_env)

    proc = mrivol_process(args, store_env, start_new_session=True)
    runs_root = Path(store_env["MRIVOL_RUNS"])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = [_epoch_of(p) for p in runs_root.glob("*/checkpoints/resume.pt")]
        if done and max(done) >= 2:
            break
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-epoch 3 at the latest
    proc.wait()
    killed_at = max(_epoch_of(p) for p in runs_root.glob("*/checkpoints/resume.pt"))
    assert 2 <= killed_at < 4

    out = run_mrivol(args, store_env)  # the same command again: the interrupted run resumes
    assert "resumed from" in out and f"after epoch {killed_at}" in out
    (run,) = experiment_runs(store_env)  # the same MLflow run continued
    assert run.info.status == "FINISHED"

    def losses(env):
        client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
        (r,) = experiment_runs(env)
        history = sorted(
            client.get_metric_history(r.info.run_id, "train_loss"), key=lambda m: m.step
        )
        return {m.step: m.value for m in history}

    resumed, reference = losses(store_env), losses(reference_env)
    assert sorted(resumed) == [1, 2, 3, 4]
    assert resumed == pytest.approx(reference, abs=1e-7)

"""Scale-out behaviour of brats_seg on the CPU: DDP with gloo, exact resume, bf16 autocast.

Each test runs real (tiny) trainings in subprocesses, as a user would with `mrivol train`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch

from tests.conftest import TINY_OVERRIDES

# deterministic data path (no random crops or flips), no dropout, and plain SGD (Adam would
# blow float noise in the gradients of biases ahead of instance norm up to full-size steps):
# one process and two DDP processes then see the same global batch and reach the same weights
DETERMINISTIC = [
    "--set",
    "optimizer#_target_=torch.optim.SGD",
    "--set",
    "learning_rate=0.1",
    "--set",
    "train_augmentation=[{_target_: SpatialPadd, keys: [image, label], spatial_size: [32, 32, 32]},"
    " {_target_: CenterSpatialCropd, keys: [image, label], roi_size: [32, 32, 32]}]",
    "--set",
    "network_def#dropout=0.0",
    "--set",
    "train#dataloader#shuffle=false",
]


def _tiny_args() -> list[str]:
    args = []
    for key, value in TINY_OVERRIDES.items():
        args += ["--set", f"{key}={value}"]
    return args


def _mrivol(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mrivol.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _run(args: list[str], env: dict[str, str], timeout: float = 600) -> str:
    proc = _mrivol(args, env)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture
def store_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["MRIVOL_RUNS"] = str(tmp_path / "runs")
    env["OMP_NUM_THREADS"] = "1"  # two processes on two cores, as torchrun sets it
    return env


def _runs(env: dict[str, str]) -> list:
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("brats_seg")
    return client.search_runs([exp.experiment_id]) if exp else []


def _final_weights(env: dict[str, str]) -> dict[str, torch.Tensor]:
    (run,) = _runs(env)
    path = Path(env["MRIVOL_RUNS"]) / run.info.run_name / "checkpoints" / "model_final.pt"
    return torch.load(path, map_location="cpu", weights_only=True)


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(
    tiny_brats_manifest, store_env, tmp_path
):
    common = ["train", "--data", str(tiny_brats_manifest), "--epochs", "2", *_tiny_args()]
    common += DETERMINISTIC
    single_env = {**store_env, "MRIVOL_RUNS": str(tmp_path / "single")}
    single_env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'single.db'}"
    _run([*common, "--set", "batch_size=4", "--set", "num_samples=1"], single_env)
    out = _run(
        [*common, "--set", "batch_size=2", "--set", "num_samples=1", "--gpus", "2"], store_env
    )
    assert "(2 processes)" in out

    (run,) = _runs(store_env)  # exactly one MLflow run for the two processes
    assert run.data.params["world_size"] == "2"
    ckpts = sorted(
        p.name
        for p in (Path(store_env["MRIVOL_RUNS"]) / run.info.run_name / "checkpoints").iterdir()
    )
    assert ckpts == ["model.pt", "model_final.pt", "resume.pt", "resume.rng0.pt", "resume.rng1.pt"]
    ddp, single = _final_weights(store_env), _final_weights(single_env)
    assert ddp.keys() == single.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-5, msg=name)


def _epoch_of(checkpoint: Path) -> int:
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError):
        return 0
    return int(state["trainer"]["iteration"] // state["trainer"]["epoch_length"])


def test_kill_after_epoch_two_then_resume_matches_uninterrupted(
    tiny_brats_manifest, store_env, tmp_path
):
    args = ["train", "--data", str(tiny_brats_manifest), "--epochs", "4", *_tiny_args()]
    reference_env = {**store_env, "MRIVOL_RUNS": str(tmp_path / "reference")}
    reference_env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'reference.db'}"
    _run(args, reference_env)

    proc = _mrivol(args, store_env, start_new_session=True)
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

    out = _run(args, store_env)  # the same command again: the interrupted run resumes
    assert "resumed from" in out and f"after epoch {killed_at}" in out
    (run,) = _runs(store_env)  # the same MLflow run continued
    assert run.info.status == "FINISHED"

    def losses(env):
        client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
        (r,) = _runs(env)
        history = sorted(
            client.get_metric_history(r.info.run_id, "train_loss"), key=lambda m: m.step
        )
        return {m.step: m.value for m in history}

    resumed, reference = losses(store_env), losses(reference_env)
    assert sorted(resumed) == [1, 2, 3, 4]
    assert resumed == pytest.approx(reference, abs=1e-7)


def test_bf16_autocast_on_cpu_trains_and_logs_amp_dtype(tiny_brats_manifest, store_env):
    args = ["train", "--data", str(tiny_brats_manifest), "--epochs", "1", *_tiny_args()]
    _run([*args, "--set", "amp_dtype=bfloat16"], store_env)
    (run,) = _runs(store_env)
    assert run.data.params["amp_dtype"] == "bfloat16"
    assert run.data.metrics["train_loss"] > 0


def test_training_logs_to_an_mlflow_server(tiny_brats_manifest, store_env, tmp_path):
    """`mlflow server` on 127.0.0.1 (sqlite backend, proxied artifacts), reached via the env var."""
    from mrivol.engine.mlflow_server import mlflow_server

    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts") as server:
        env = {**store_env, "MLFLOW_TRACKING_URI": server.url}
        out = _run(
            ["train", "--data", str(tiny_brats_manifest), "--epochs", "1", *_tiny_args()], env
        )
        assert "tracking server: http://127.0.0.1" in out
        (run,) = _runs(env)
        assert run.info.status == "FINISHED"
        assert "val_mean_dice" in run.data.metrics
        names = {a.path for a in mlflow.MlflowClient(server.url).list_artifacts(run.info.run_id)}
        assert {"model.pt", "config.yaml", "val_per_case.csv"} <= names

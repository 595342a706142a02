"""Scale-out behaviour of brats_seg on the CPU: DDP with gloo, bf16 autocast, an MLflow server.

Each test runs real (tiny) trainings in subprocesses, as a user would with `mrivol train`.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import torch

from tests.conftest import experiment_runs, run_mrivol, tiny_set_args

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
    "intensity_augmentation=[]",
    "--set",
    "network_def#dropout=0.0",
    "--set",
    "train#dataloader#shuffle=false",
]


def _final_weights(env: dict[str, str]) -> dict[str, torch.Tensor]:
    (run,) = experiment_runs(env)
    path = Path(env["MRIVOL_RUNS"]) / run.info.run_name / "checkpoints" / "model_final.pt"
    return torch.load(path, map_location="cpu", weights_only=True)


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(
    tiny_brats_manifest, store_env, tmp_path
):
    common = ["train", "--data", str(tiny_brats_manifest), "--epochs", "2", *tiny_set_args()]
    common += DETERMINISTIC
    single_env = {**store_env, "MRIVOL_RUNS": str(tmp_path / "single")}
    single_env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'single.db'}"
    run_mrivol([*common, "--set", "batch_size=4", "--set", "num_samples=1"], single_env)
    out = run_mrivol(
        [*common, "--set", "batch_size=2", "--set", "num_samples=1", "--gpus", "2"], store_env
    )
    assert "(2 processes)" in out

    (run,) = experiment_runs(store_env)  # exactly one MLflow run for the two processes
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


def test_bf16_autocast_on_cpu_trains_and_logs_amp_dtype(tiny_brats_manifest, store_env):
    args = ["train", "--data", str(tiny_brats_manifest), "--epochs", "1", *tiny_set_args()]
    run_mrivol([*args, "--set", "amp_dtype=bfloat16"], store_env)
    (run,) = experiment_runs(store_env)
    assert run.data.params["amp_dtype"] == "bfloat16"
    assert run.data.metrics["train_loss"] > 0


def test_training_logs_to_an_mlflow_server(tiny_brats_manifest, store_env, tmp_path):
    """`mlflow server` on 127.0.0.1 (sqlite backend, proxied artifacts), reached via the env var."""
    from mrivol.tracking.server import mlflow_server

    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts") as server:
        env = {**store_env, "MLFLOW_TRACKING_URI": server.url}
        out = run_mrivol(
            ["train", "--data", str(tiny_brats_manifest), "--epochs", "1", *tiny_set_args()], env
        )
        assert "tracking server: http://127.0.0.1" in out
        (run,) = experiment_runs(env)
        assert run.info.status == "FINISHED"
        assert "val_mean_dice" in run.data.metrics
        names = {a.path for a in mlflow.MlflowClient(server.url).list_artifacts(run.info.run_id)}
        assert {"model.pt", "config.yaml", "val_per_case.csv"} <= names


def test_dynunet_on_two_processes_plans_once_before_the_ranks_start(store_env, tmp_path):
    """No plans file: the launching process plans (once); neither rank plans or waits for it."""
    from mrivol.data import build_manifest
    from tests.conftest import write_tiny_brats_case

    for i in range(6):
        write_tiny_brats_case(tmp_path / "cases", f"tiny_{i:03d}", seed=i)
    manifest = tmp_path / "fresh.csv"
    build_manifest(layout="brats2021", root=tmp_path / "cases", out=manifest, folds=3, seed=0)
    plans = tmp_path / "fresh.plans.json"
    assert not plans.exists()
    out = run_mrivol(["train", "--net", "dynunet", "--data", str(manifest), "--epochs", "1",
                      "--gpus", "2", *tiny_set_args()], store_env)  # fmt: skip
    planning = [line for line in out.splitlines() if "planning the network" in line]
    assert len(planning) == 1 and "before starting 2 processes" in planning[0], planning
    assert plans.is_file() and "(2 processes)" in out
    (run,) = experiment_runs(store_env)
    assert run.info.status == "FINISHED" and run.data.params["world_size"] == "2"

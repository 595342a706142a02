"""Which earlier run `mrivol train` continues: never one of other data or configuration."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from mrivol.training.run_tracking import config_hash, find_resumable_run
from mrivol.training.workflow import config_files

FILES = config_files("ad_cls", "train", profile="cpu", net="densenet_attention")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MRIVOL_RUNS", str(tmp_path / "runs"))
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, client.create_experiment("ad_cls")


def _run(store, tmp_path, name, *, data="aaa", sets=None, status="RUNNING", checkpoint=True):
    client, exp = store
    run = client.create_run(exp, run_name=name)
    params = {"network": "densenet_attention", "fold": "0", "manifest_hash": data,
              "config_hash": config_hash(FILES, sets)}  # fmt: skip
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status=status)
    if checkpoint:
        ckpt = tmp_path / "runs" / name / "checkpoints" / "resume.pt"
        ckpt.parent.mkdir(parents=True)
        ckpt.write_bytes(b"x")
    return run.info.run_id


def _find(store, *, data="aaa", sets=None, unfinished_only=True):
    client, exp = store
    run = find_resumable_run(client, exp, "densenet_attention", 0, unfinished_only=unfinished_only,
                         data_hash=data, settings_hash=config_hash(FILES, sets))  # fmt: skip
    return run.info.run_id if run else None


def test_config_hash_sees_files_and_override_values_not_their_order(tmp_path):
    assert config_hash(FILES, {"a": 1, "b": [2]}) == config_hash(FILES, {"b": [2], "a": 1})
    assert config_hash(FILES, {"a": 1}) != config_hash(FILES, {"a": 2})
    assert config_hash(FILES, None) == config_hash(FILES, {})
    i = next(i for i, f in enumerate(FILES) if f.parent.name == "profiles")
    edited = tmp_path / "profiles" / "cpu.yaml"  # the same name, other content
    edited.parent.mkdir()
    edited.write_text(FILES[i].read_text() + "max_epochs: 3\n")
    assert FILES[i].name == "cpu.yaml"
    assert config_hash([*FILES[:i], edited, *FILES[i + 1 :]], None) != config_hash(FILES, None)


def test_only_a_killed_run_of_the_same_data_and_overrides_is_continued(store, tmp_path):
    sets = {"synthetic_manifest": "/runs/gan/samples/manifest.csv"}
    killed = _run(store, tmp_path, "killed", sets=sets)
    assert _find(store, sets=sets) == killed
    assert _find(store) is None  # the same data without the synthetic samples: a new run
    assert _find(store, data="bbb", sets=sets) is None  # other data: a new run
    assert _find(store, sets={"synthetic_manifest": "/runs/other/manifest.csv"}) is None


def test_automatic_resume_skips_finished_runs_and_runs_without_checkpoint(store, tmp_path):
    _run(store, tmp_path, "no-ckpt", checkpoint=False)
    finished = _run(store, tmp_path, "finished", status="FINISHED")
    assert _find(store) is None
    assert _find(store, unfinished_only=False) == finished  # RESUME=1 extends a finished run

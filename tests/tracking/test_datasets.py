"""Manifests as MLflow dataset inputs; system metrics labelled per node."""

from __future__ import annotations

import shutil

import mlflow
import pytest

from mrivol.data import manifest_hash, to_datalist
from mrivol.tracking.datasets import DIGEST_CHARS, log_manifest_datasets
from mrivol.tracking.system_metrics import node_label


def test_same_manifest_content_gives_the_same_digest_wherever_it_lies(
    tiny_brats_manifest, tmp_path
):
    """Two copies of one manifest (same cases, other path) are visibly the same data."""
    copy = tiny_brats_manifest.parent / "copy_of_manifest.csv"
    shutil.copyfile(tiny_brats_manifest, copy)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("datasets")
    digests = []
    for path in (tiny_brats_manifest, copy):
        run = client.create_run(experiment)
        splits = {s: to_datalist(path, fold=1, split=s) for s in ("train", "val")}
        log_manifest_datasets(
            client, run.info.run_id, manifest=path, fold=1, manifest_hash=manifest_hash(path),
            splits=splits,
        )  # fmt: skip
        logged = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert sorted(i.dataset.name for i in logged) == [
            f"{path.stem}-fold1-train",
            f"{path.stem}-fold1-val",
        ]
        digests.append({i.dataset.digest for i in logged})
    assert digests[0] == digests[1] == {manifest_hash(copy)[:DIGEST_CHARS]}


@pytest.mark.parametrize(
    ("env", "label"),
    [({}, None), ({"NNODES": "1"}, None), ({"NNODES": "2", "NODE_RANK": "1"}, "node1")],
    ids=["single", "one-node", "second-of-two"],
)
def test_system_metrics_are_labelled_by_node_on_multi_node_runs(monkeypatch, env, label):
    for key in ("NNODES", "NODE_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert node_label() == label

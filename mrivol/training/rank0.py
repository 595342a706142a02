"""The handlers every mrivol training run attaches on rank 0: progress, final weights, MLflow.

The rest of the shared training setup is declarative YAML (``bundles/shared/supervised.yaml``);
these two factories exist because the supervised bundles and the GAN bundle attach the same
three handlers with different weights and artifacts, and because only rank 0 may write them.
A bundle's config calls them with its few differences::

    rank0_handlers:
      _target_: mrivol.training.rank0_handlers
      ckpt_dir: "@ckpt_dir"
      save_dict: {model: "@network"}
      mlflow: "@mlflow"
      validator: "@validate#evaluator"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mrivol.training.distributed import rank
from mrivol.training.handlers import ProgressHandler

__all__ = ["rank0_handlers", "validation_loggers"]


def rank0_handlers(
    *,
    ckpt_dir: str | Path,
    save_dict: Mapping[str, Any],
    mlflow: Mapping[str, Any],
    artifacts: Sequence[str | Path] = (),
    validator: Any | None = None,
    losses: Sequence[str] = ("loss",),
) -> list[Any]:
    """The trainer's rank-0 handlers: progress line, final weights, the MLflow run.

    Args:
        ckpt_dir: where ``model_final.pt`` (MONAI ``CheckpointSaver``, at the end) goes.
        save_dict: what the final checkpoint holds (``{"model": network}``).
        mlflow: ``tracking_uri``, ``experiment_name`` and ``run_name`` of MONAI's
            ``MLFlowHandler`` (``mlflow`` in ``bundles/shared/base.yaml``).
        artifacts: files and folders logged when training completes (missing ones are
            skipped by MONAI).
        validator: the evaluator whose key metric the progress line shows.
        losses: training-output keys the progress line shows.

    Returns:
        The three handlers on rank 0 (or without torch.distributed), nothing on other ranks.
        They are built on every rank all the same: ignite's ``DiskSaver`` asks the process
        group for the rank when it is created, a collective that every rank must join.
    """
    from monai.handlers import CheckpointSaver, MLFlowHandler

    handlers = [
        ProgressHandler(validator=validator, losses=losses),
        CheckpointSaver(
            save_dir=str(ckpt_dir),
            save_dict=dict(save_dict),
            save_final=True,
            final_filename="model_final.pt",
        ),
        MLFlowHandler(
            **mlflow,
            iteration_log=False,  # per-epoch means are logged instead
            artifacts=[str(a) for a in artifacts],
            close_on_complete=True,
        ),
    ]
    return handlers if rank() == 0 else []


def validation_loggers(*, mlflow: Mapping[str, Any]) -> list[Any]:
    """The evaluator's rank-0 handler: its epoch metrics into the training's MLflow run."""
    from monai.handlers import MLFlowHandler

    handler = MLFlowHandler(**mlflow, iteration_log=False)  # the trainer's epoch is the step
    return [handler] if rank() == 0 else []

"""Ignite handlers the bundles attach next to MONAI's: epoch statistics, progress, reports.

MONAI's handlers log and checkpoint; these add what a person at the terminal and the MLflow
run need on top: per-epoch training loss and throughput and a progress bar with the time left.
The validation reports (per-region metrics, per-case CSV, overlay PNG) are
:class:`mrivol.evaluation.ValidationReport`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["EpochStatsHandler", "ProgressHandler", "as_list", "scalar_loss"]


def as_list(output) -> list:
    """An engine's batch or output as a list (a decollated list stays, anything else is wrapped)."""
    return output if isinstance(output, list) else [output]


def scalar_loss(value) -> float:
    """A loss as a float (detached first: ``item()`` on a graph tensor warns)."""
    return float(value.detach().item() if isinstance(value, torch.Tensor) else value)


class EpochStatsHandler:
    """Put ``train_loss``, ``epoch_seconds`` and ``samples_per_s`` into ``engine.state.metrics``.

    Attach it before ``ValidationHandler`` so the timing covers training only, and before
    ``MLFlowHandler`` so the values are logged with the epoch.
    """

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._complete)

    def _start(self, engine: Engine) -> None:
        self._t0, self._loss, self._samples = time.perf_counter(), 0.0, 0

    def _iteration(self, engine: Engine) -> None:
        items = as_list(engine.state.output)
        self._loss += scalar_loss(items[0]["loss"]) * len(items)
        self._samples += len(items)

    def _complete(self, engine: Engine) -> None:
        seconds = time.perf_counter() - self._t0
        engine.state.metrics["train_loss"] = self._loss / max(self._samples, 1)
        engine.state.metrics["epoch_seconds"] = seconds
        engine.state.metrics["samples_per_s"] = self._samples / max(seconds, 1e-9)


class ProgressHandler:
    """A progress bar per epoch and a one-line summary with the time left.

    Args:
        validator: the evaluator whose metrics are shown (``None``: training loss only).
        key_metric: the validator metric shown as "val" (and tracked as best); ``None``: the
            validator's own key metric (``state.key_metric_name``).
        losses: training-output keys shown on the bar (``("g_loss", "d_loss")`` for a GAN) and,
            as ``train_<key>`` / ``gan_<key>`` metrics, in the epoch line.
    """

    def __init__(
        self,
        *,
        validator: Engine | None = None,
        key_metric: str | None = None,
        losses: Sequence[str] = ("loss",),
    ):
        self.key_metric = key_metric
        self.validator = validator
        self.losses = tuple(losses)
        self._bar = None

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _started(self, engine: Engine) -> None:
        self._t0 = time.perf_counter()
        self._first_epoch = engine.state.epoch

    def _epoch_started(self, engine: Engine) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=engine.state.epoch_length,
            desc=f"epoch {engine.state.epoch}/{engine.state.max_epochs}",
            unit="it",
            leave=False,
            disable=None,
        )

    def _iteration(self, engine: Engine) -> None:
        if self._bar is not None:
            out = as_list(engine.state.output)[0]
            shown = {k: f"{scalar_loss(out[k]):.4f}" for k in self.losses if k in out}
            self._bar.set_postfix(shown)
            self._bar.update(1)

    def _epoch_completed(self, engine: Engine) -> None:
        if self._bar is not None:
            self._bar.close()
        epoch, total = engine.state.epoch, engine.state.max_epochs
        done = epoch - self._first_epoch
        elapsed = time.perf_counter() - self._t0
        left = elapsed / max(done, 1) * (total - epoch)
        parts = [f"epoch {epoch}/{total}"]
        for key in self.losses:
            for name in (f"train_{key}", f"gan_{key}"):
                if name in engine.state.metrics:
                    parts.append(f"{key} {engine.state.metrics[name]:.4f}")
        vm = self.validator.state.metrics if self.validator is not None else {}
        named = getattr(self.validator.state, "key_metric_name", None) if vm else None
        key = self.key_metric or named
        if key in vm and self.validator.state.epoch == epoch:
            regions = [
                f"{k.removeprefix('val_dice_')} {v:.3f}"
                for k, v in vm.items()
                if k.startswith("val_dice_")
            ]
            name = "val dice" if key == "val_mean_dice" else key
            detail = f" ({', '.join(regions)})" if regions else ""
            parts.append(f"{name} {vm[key]:.3f}{detail}")
            if "val_hd95" in vm and math.isfinite(vm["val_hd95"]):
                parts.append(f"hd95 {vm['val_hd95']:.1f} mm")
            if "val_accuracy" in vm and key != "val_accuracy":  # a class head too
                parts.append(f"accuracy {vm['val_accuracy']:.3f}")
            best = self.validator.state.best_metric
            parts.append(f"best {best:.3f} @ {self.validator.state.best_metric_epoch}")
        parts.append(f"{elapsed / max(done, 1):.0f} s/epoch, ~{left / 60:.1f} min left")
        print("  ".join(parts), flush=True)

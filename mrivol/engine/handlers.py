"""Ignite handlers the bundles attach next to MONAI's: epoch statistics, progress, reports.

MONAI's handlers log and checkpoint; these add what a person at the terminal and the MLflow
run need on top: per-epoch training loss and throughput, a progress bar with the time left,
per-region validation metrics, the per-case CSV and an overlay PNG of the best epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mrivol.engine.distributed import rank
from mrivol.engine.overlay import axial_snapshot, save_overlay_png
from mrivol.io import write_csv_atomic

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["EpochStatsHandler", "ProgressHandler", "ValidationReport"]


def _as_list(output) -> list:
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
        items = _as_list(engine.state.output)
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
        key_metric: the validator metric shown as "val" (and tracked as best).
        losses: training-output keys shown on the bar (``("g_loss", "d_loss")`` for a GAN) and,
            as ``train_<key>`` / ``gan_<key>`` metrics, in the epoch line.
    """

    def __init__(
        self,
        *,
        validator: Engine | None = None,
        key_metric: str = "val_mean_dice",
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
            out = _as_list(engine.state.output)[0]
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
        if self.key_metric in vm and self.validator.state.epoch == epoch:
            regions = [
                f"{k.removeprefix('val_dice_')} {v:.3f}"
                for k, v in vm.items()
                if k.startswith("val_dice_")
            ]
            name = "val dice" if self.key_metric == "val_mean_dice" else self.key_metric
            detail = f" ({', '.join(regions)})" if regions else ""
            parts.append(f"{name} {vm[self.key_metric]:.3f}{detail}")
            if "val_hd95" in vm and math.isfinite(vm["val_hd95"]):
                parts.append(f"hd95 {vm['val_hd95']:.1f} mm")
            if "val_accuracy" in vm and self.key_metric != "val_accuracy":  # a class head too
                parts.append(f"accuracy {vm['val_accuracy']:.3f}")
            best = self.validator.state.best_metric
            parts.append(f"best {best:.3f} @ {self.validator.state.best_metric_epoch}")
        parts.append(f"{elapsed / max(done, 1):.0f} s/epoch, ~{left / 60:.1f} min left")
        print("  ".join(parts), flush=True)


class ValidationReport:
    """Per-region metrics, a per-case CSV and an overlay PNG for each validation run.

    Reads the per-case values that MONAI's metric handlers keep in
    ``engine.state.metric_details`` (``save_details=True``): for every metric whose details are
    (cases, regions), adds ``<metric>_<region>`` means to ``engine.state.metrics`` (so that
    ``val_mean_dice`` gives ``val_dice_tc`` ...). When the key metric improves, writes
    ``val_per_case.csv`` and ``val_overlay.png`` (the median case by mean Dice) to ``output_dir``.

    Args:
        output_dir: where the CSV and PNG go.
        regions: region names in channel order.
        key_metric: the metric whose details give Dice per case (for picking the median case).
    """

    def __init__(
        self,
        *,
        output_dir: str | Path,
        regions: Sequence[str] = ("tc", "wt", "et"),
        key_metric: str = "val_mean_dice",
    ):
        self.output_dir = Path(output_dir)
        self.regions = list(regions)
        self.key_metric = key_metric
        self.best_metrics: dict[str, float] = {}

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _reset(self, engine: Engine) -> None:
        self._cases: list[str] = []
        self._snapshots: list[dict[str, np.ndarray]] = []

    def _iteration(self, engine: Engine) -> None:
        batch, output = _as_list(engine.state.batch), _as_list(engine.state.output)
        for item, out in zip(batch, output, strict=True):
            case = item.get("case_id") if isinstance(item, dict) else None
            if case is None:
                meta = getattr(out["image"], "meta", {})
                case = Path(str(meta.get("filename_or_obj", f"case{len(self._cases)}"))).name
            self._cases.append(str(case))
            self._snapshots.append(
                axial_snapshot(
                    out["image"].detach().cpu().numpy(),
                    out["label"].detach().cpu().numpy(),
                    out["pred"].detach().cpu().numpy(),
                )
            )

    def _epoch_completed(self, engine: Engine) -> None:
        from monai.utils import string_list_all_gather

        columns: dict[str, np.ndarray] = {}
        for name, details in getattr(engine.state, "metric_details", {}).items():
            values = (
                details.detach().cpu().numpy()
                if isinstance(details, torch.Tensor)
                else np.asarray(details)
            )
            if values.ndim != 2 or values.shape[1] != len(self.regions):
                continue
            base = "val_dice" if name == "val_mean_dice" else name
            for j, region in enumerate(self.regions):
                columns[f"{base}_{region}"] = values[:, j]
                engine.state.metrics[f"{base}_{region}"] = float(np.nanmean(values[:, j]))
        # MONAI gathers metric details over ranks (rank 0's cases first): gather case ids alike
        cases = string_list_all_gather(self._cases)
        improved = getattr(engine.state, "best_metric_epoch", -1) == engine.state.epoch
        if not improved or not columns or rank() != 0:
            return
        self.best_metrics = {
            k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float))
        }
        self.best_metrics["epoch"] = engine.state.epoch
        n = len(next(iter(columns.values())))
        rows = [
            {"case_id": case, **{k: float(v[i]) for k, v in columns.items()}}
            for i, case in enumerate(cases[:n])
        ]
        write_csv_atomic(rows, self.output_dir / "val_per_case.csv")
        dice_columns = [
            columns[f"val_dice_{r}"] for r in self.regions if f"val_dice_{r}" in columns
        ]
        if not dice_columns or not self._snapshots:
            return
        local = np.nanmean(np.stack(dice_columns), axis=0)[: len(self._snapshots)]
        median = int(np.argsort(local)[len(local) // 2])
        save_overlay_png(
            self._snapshots[median],
            self.output_dir / "val_overlay.png",
            regions=self.regions,
            title=f"{self._cases[median]} (epoch {engine.state.epoch}, "
            f"mean Dice {local[median]:.3f})",
        )

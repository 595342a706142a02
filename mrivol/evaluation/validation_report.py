"""Per-region validation metrics, the per-case CSV and an overlay PNG of the best epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mrivol.evaluation.overlay import axial_snapshot, save_overlay_png
from mrivol.io import write_csv_atomic
from mrivol.training.distributed import rank
from mrivol.training.handlers import as_list

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["ValidationReport"]


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
        batch, output = as_list(engine.state.batch), as_list(engine.state.output)
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

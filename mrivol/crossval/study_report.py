"""The network study's table and chart: per network its OOF scores, spread, size and time.

One row per network (CV parent): the study score, the mean and std over the OOF cases of each
region's Dice (and lesion-wise Dice, or for classification the per-class recall), the mean and
std of the per-fold mean Dice (or balanced accuracy), the parameters (counted in a fold's best
checkpoint), the epochs per fold and the training minutes (the sum of the folds'
``epoch_seconds``, so a resumed fold counts what it trained).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrivol.io import save_figure_atomic
from mrivol.paths import runs_dir

__all__ = ["checkpoint_parameters", "format_study_table", "save_study_chart", "study_table"]


def checkpoint_parameters(path: Path) -> int:
    """Number of parameters (floating-point tensors) in a saved state dict."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    return int(sum(t.numel() for t in state.values() if torch.is_floating_point(t)))


def _case_stats(path: Path) -> dict[str, float]:
    """``<metric>_<region>_mean`` / ``_std`` over the cases of ``oof_per_case.csv``."""
    if not path.is_file():
        return {}
    with path.open() as f:
        rows = list(csv.DictReader(f))
    out: dict[str, float] = {}
    metric_names = ("dice", "lesionwise_dice", "hd95_mm")
    for region in dict.fromkeys(r["region"].lower() for r in rows if r.get("region")):
        for metric in metric_names:
            values = [
                float(r[metric]) for r in rows if r["region"].lower() == region and r.get(metric)
            ]
            if values:
                out[f"{metric}_{region}_mean"] = float(np.mean(values))
                out[f"{metric}_{region}_std"] = (
                    float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                )
    return out


def study_table(client: Any, cvs: Mapping[str, Any], scores: Mapping[str, float]) -> list[dict]:
    """One row per network (see the module docstring)."""
    rows = []
    for net, cv in cvs.items():
        row: dict[str, Any] = {"network": net, "score": scores[net]}
        m = cv.metrics
        for key in ("cv_mean_dice", "cv_lesionwise_dice", "cv_balanced_accuracy", "cv_auc"):
            if key in m:
                row[key] = m[key]
        for stem in ("mean_dice", "balanced_accuracy"):
            if f"cv_fold_{stem}_mean" in m:
                row[f"fold_{stem}_mean"] = m[f"cv_fold_{stem}_mean"]
                row[f"fold_{stem}_std"] = m.get(f"cv_fold_{stem}_std", math.nan)
        row.update({k: v for k, v in m.items() if k.startswith("cv_recall_")})
        row.update(_case_stats(cv.output_dir / "oof_per_case.csv"))
        seconds, epochs, params = 0.0, [], math.nan
        for run_id in cv.folds.values():
            run = client.get_run(run_id)
            history = client.get_metric_history(run_id, "epoch_seconds")
            seconds += sum(h.value for h in history)
            epochs.append(len({h.step for h in history}))
            ckpt = runs_dir() / run.info.run_name / "checkpoints" / "model.pt"
            if math.isnan(params) and ckpt.is_file():
                params = checkpoint_parameters(ckpt)
        row.update(
            parameters=params,
            epochs_per_fold=float(np.mean(epochs)) if epochs else math.nan,
            train_minutes=seconds / 60.0,
            cv_parent_run_id=cv.parent_run_id,
        )
        rows.append(row)
    return sorted(rows, key=lambda r: -r["score"])


def format_study_table(table: Sequence[Mapping[str, Any]]) -> str:
    """The table as text: score, mean ± std per region, fold spread, parameters, minutes."""
    regions = [k[5:-5] for k in table[0] if k.startswith("dice_") and k.endswith("_mean")]
    head = f"{'network':<12s} {'score':>7s} " + " ".join(f"{'dice ' + r:>15s}" for r in regions)
    head += f" {'fold mean':>15s} {'params':>10s} {'epochs':>6s} {'train min':>9s}"
    lines = [head]
    for row in table:
        cells = [f"{row['network']:<12s}", f"{row['score']:7.4f}"]
        cells += [f"{row[f'dice_{r}_mean']:7.3f} ± {row[f'dice_{r}_std']:5.3f}" for r in regions]
        stem = "mean_dice" if "fold_mean_dice_mean" in row else "balanced_accuracy"
        mean, std = row.get(f"fold_{stem}_mean", math.nan), row.get(f"fold_{stem}_std", math.nan)
        cells.append(f"{mean:7.3f} ± {std:5.3f}")
        params = row["parameters"]
        cells.append(f"{params / 1e6:9.2f}M" if not math.isnan(params) else f"{'-':>10s}")
        cells.append(f"{row['epochs_per_fold']:6.1f}")
        cells.append(f"{row['train_minutes']:9.1f}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def save_study_chart(table: Sequence[Mapping[str, Any]], path: Path, *, score_name: str) -> Path:
    """Bars of each region's Dice (mean ± std over OOF cases) per network, and score vs time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = [r["network"] for r in table]
    regions = [k[5:-5] for k in table[0] if k.startswith("dice_") and k.endswith("_mean")]
    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(8 + 0.8 * len(nets), 4.2))
    x = np.arange(len(nets))
    width = 0.8 / max(len(regions), 1)
    for i, region in enumerate(regions):
        means = [r[f"dice_{region}_mean"] for r in table]
        stds = [r[f"dice_{region}_std"] for r in table]
        offset = (i - (len(regions) - 1) / 2) * width
        bars.bar(x + offset, means, width, yerr=stds, capsize=3, label=region.upper())
    if regions:
        bars.set_ylim(0, 1.05)
        bars.set_ylabel("OOF Dice (mean ± std over cases)")
        bars.legend(fontsize=8)
    else:  # classification: the score per network
        bars.bar(x, [r["score"] for r in table])
        bars.set_ylabel(score_name)
    bars.set_xticks(x, nets, rotation=20)
    for row in table:
        scatter.scatter(row["train_minutes"], row["score"])
        scatter.annotate(row["network"], (row["train_minutes"], row["score"]), fontsize=8)
    scatter.set_xlabel("training minutes, all folds")
    scatter.set_ylabel(f"OOF {score_name}")
    scatter.grid(alpha=0.3)
    fig.suptitle(f"{len(nets)} networks on the same folds")
    fig.tight_layout()
    try:
        return save_figure_atomic(fig, path, dpi=110)
    finally:
        plt.close(fig)

"""``mrivol compare --cv``: the cross-validations (CV parent runs) of an experiment side by side.

A CV parent (:mod:`mrivol.tracking.cv_runs`) holds pooled out-of-fold metrics (``cv_*``) and
the spread over its folds (``cv_fold_<metric>_mean`` / ``_std``); this table puts one row per
parent, best first by ``metric``, with its network, folds, epochs, per-region scores, the
post-processing gain (OOF score after minus before) and the training minutes of its folds (the
sum of their ``epoch_seconds``); the chart shows the metric with its fold spread.
Read with MLflow's own client; nothing is recomputed.

Examples:
    >>> df = compare_cv_parents("brats_seg")  # doctest: +SKIP
    >>> df[["run_name", "network", "cv_mean_dice", "cv_fold_mean_dice_std"]]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from mrivol.io import save_figure_atomic
from mrivol.tracking.cv_runs import CV_TAG, fold_runs

__all__ = ["CV_COLUMNS", "compare_cv_parents", "format_cv_comparison", "plot_cv_comparison"]

CV_COLUMNS = (
    "run_name", "network", "profile", "folds", "epochs", "{metric}", "spread",
    "cv_dice_tc", "cv_dice_wt", "cv_dice_et", "cv_lesionwise_dice", "cv_hd95",
    "cv_balanced_accuracy", "cv_auc", "pp_gain", "train_min", "status",
)  # fmt: skip


def _row(client: Any, run: Any, metric: str) -> dict[str, Any]:
    m, params = run.data.metrics, run.data.params
    stem = metric.removeprefix("cv_")
    spread = m.get(f"cv_fold_{stem}_std", math.nan)
    gain = m.get("cv_pp_score_after", math.nan) - m.get("cv_pp_score_before", math.nan)
    children = fold_runs(client, run)
    histories = (
        client.get_metric_history(c.info.run_id, "epoch_seconds") for c in children.values()
    )
    seconds = sum(h.value for history in histories for h in history)
    return {
        "run_name": run.info.run_name,
        "network": params.get("network", ""),
        "profile": params.get("profile", ""),
        "folds": len(children),
        "epochs": params.get("max_epochs", ""),
        metric: m.get(metric, math.nan),
        "spread": spread,
        **{k: m.get(k, math.nan) for k in CV_COLUMNS if k.startswith("cv_")},
        "pp_gain": gain,
        "train_min": seconds / 60.0,
        "status": run.info.status,
        "run_id": run.info.run_id,
    }


def compare_cv_parents(
    experiment: str,
    *,
    metric: str = "cv_mean_dice",
    tracking_uri: str | None = None,
    out_png: Path | None = None,
) -> pd.DataFrame:
    """One row per CV parent of ``experiment``, best ``metric`` first; optionally a chart.

    Raises:
        ValueError: no such experiment, or no CV parent in it (the message says what to run).
    """
    import mlflow

    from mrivol.tracking.runs import default_tracking_uri

    tracking_uri = tracking_uri or default_tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no experiment {experiment!r} in {tracking_uri}")
    parents = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`{CV_TAG}` = 'parent'", max_results=1000
    )
    if not parents:
        raise ValueError(
            f"experiment {experiment!r} has no cross-validation yet: run "
            f"`make cv BUNDLE={experiment}` (mrivol cv --bundle {experiment})"
        )
    df = pd.DataFrame([_row(client, run, metric) for run in parents])
    lower = "hd95" in metric
    df = df.sort_values(metric, ascending=lower, na_position="last", kind="stable")
    df = df.reset_index(drop=True)
    if out_png is not None:
        plot_cv_comparison(df, out_png, metric=metric)
    return df


def format_cv_comparison(df: pd.DataFrame, *, metric: str = "cv_mean_dice") -> str:
    """The table ``mrivol compare --cv`` prints (NaN as ``-``; spread: std over folds)."""
    columns = [c.format(metric=metric) for c in CV_COLUMNS]
    table = df[[c for c in dict.fromkeys(columns) if c in df.columns]].copy()
    table = table.dropna(axis=1, how="all")
    digits = {"train_min": 1, "cv_hd95": 1}
    formatters = {
        c: (lambda d: lambda v: "-" if pd.isna(v) else f"{v:.{d}f}")(digits.get(c, 3))
        for c in table.columns
        if pd.api.types.is_float_dtype(table[c])
    }
    return table.to_string(index=False, na_rep="-", formatters=formatters)


def plot_cv_comparison(df: pd.DataFrame, out_png: str | Path, *, metric: str) -> Path:
    """Bars of ``metric`` per CV parent with the std over its folds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{n}\n{r[-15:]}" for n, r in zip(df["network"], df["run_name"], strict=True)]
    fig, ax = plt.subplots(figsize=(4 + 0.9 * len(names), 4))
    ax.bar(range(len(names)), df[metric].fillna(0), yerr=df["spread"].fillna(0), capsize=4)
    ax.set_xticks(range(len(names)), names, fontsize=7)
    ax.set_ylabel(f"{metric} (error bar: std over folds)")
    ax.set_title(f"{len(names)} cross-validations")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    try:
        return save_figure_atomic(fig, out_png, dpi=100)
    finally:
        plt.close(fig)

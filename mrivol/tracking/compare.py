"""``mrivol compare``: the runs of one MLflow experiment side by side, as a table and a chart.

Runs are read with MLflow's own client (any store: the local sqlite file or a tracking server);
nothing is cached or recomputed. For each run the epoch where the chosen metric peaked is found
in its history, and the per-region Dice and HD95 *at that epoch* are reported, so that the
numbers in one row come from one model. The same comparison in the MLflow UI: open
``#/experiments/<id>/runs``, tick the runs, press "Compare" (see ``docker/README.md``).

Examples:
    >>> df = compare_runs("brats_seg", out_png=Path("runs/compare.png"))  # doctest: +SKIP
    >>> df[["run_name", "val_mean_dice", "dice_tc"]].head(3)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mrivol.io import atomic_path

__all__ = [
    "REGIONS",
    "add_compare_arguments",
    "compare_runs",
    "format_comparison",
    "main_compare",
    "plot_comparison",
    "summarize_run",
]

REGIONS = ("tc", "wt", "et")  # BraTS tumour core, whole tumour, enhancing tumour
LOWER_IS_BETTER = ("hd95", "loss", "seconds")  # substrings of metrics where the minimum wins
TABLE_COLUMNS = (
    "run_name", "network", "profile", "gpus", "amp", "epochs", "best_epoch", "{metric}",
    "dice_tc", "dice_wt", "dice_et", "hd95", "wall_s", "samples_per_s", "status",
)  # fmt: skip


def metric_mode(metric: str) -> str:
    """``min`` for distances, losses and times, ``max`` otherwise.

    Examples:
        >>> metric_mode("val_mean_dice"), metric_mode("val_hd95")
        ('max', 'min')
    """
    return "min" if any(s in metric for s in LOWER_IS_BETTER) else "max"


def _by_step(history: Sequence[Any]) -> dict[int, float]:
    """``{step: value}`` of an MLflow metric history (the last value logged at a step wins)."""
    values: dict[int, float] = {}
    for point in sorted(history, key=lambda m: (m.step, m.timestamp)):
        values[int(point.step)] = float(point.value)
    return values


SHORT_DTYPES = {"float16": "fp16", "bfloat16": "bf16"}


def _amp_label(params: dict[str, str]) -> str:
    """``fp16``/``bf16``/``off`` from the ``amp_dtype`` param (or a boolean ``amp``); ``""`` if
    the run logged neither."""
    if (dtype := params.get("amp_dtype")) is not None:
        key = dtype.strip().lower()
        return "off" if key in ("", "none", "null", "false") else SHORT_DTYPES.get(key, key)
    amp = params.get("amp", "").strip().lower()
    if not amp:
        return ""
    return "off" if amp in ("false", "0", "off", "no", "none") else "on"


def _gpus(params: dict[str, str]) -> str:
    """Processes of the run (``world_size``: one per GPU on the gpu profile), else ``gpus``."""
    return params.get("world_size") or params.get("gpus", "")


def summarize_run(client: Any, run: Any, *, metric: str, mode: str | None = None) -> dict:
    """One row of the comparison: params of ``run`` and its metrics at the best epoch.

    Args:
        client: an :class:`mlflow.MlflowClient`.
        run: an :class:`mlflow.entities.Run` from ``search_runs``.
        metric: the metric whose best epoch is chosen (e.g. ``val_mean_dice``).
        mode: ``max`` or ``min``; from the metric's name when ``None``.

    Returns:
        A dict with the :data:`TABLE_COLUMNS` (``metric`` under its own name), ``run_id`` and
        ``history`` (``{epoch: value}`` of ``metric``, for the chart). Values a run never logged
        are NaN.
    """
    mode = mode or metric_mode(metric)
    params = run.data.params
    run_id = run.info.run_id
    history = _by_step(client.get_metric_history(run_id, metric))
    best_epoch = None
    if history:
        pick = max if mode == "max" else min
        finite = {s: v for s, v in history.items() if math.isfinite(v)}
        best_epoch = pick(finite, key=finite.__getitem__) if finite else None

    def at_best(key: str) -> float:
        if best_epoch is None:
            return math.nan
        return _by_step(client.get_metric_history(run_id, key)).get(best_epoch, math.nan)

    speed = _by_step(client.get_metric_history(run_id, "samples_per_s"))
    epoch_steps = _by_step(client.get_metric_history(run_id, "epoch_seconds"))
    epochs = max(epoch_steps) if epoch_steps else params.get("max_epochs", "")
    row = {
        "run_name": run.info.run_name or run_id,
        "network": params.get("network", ""),
        "profile": params.get("profile", ""),
        "gpus": _gpus(params),
        "amp": _amp_label(params),
        "epochs": int(epochs) if str(epochs).isdigit() else math.nan,
        "best_epoch": best_epoch if best_epoch is not None else math.nan,
        metric: history.get(best_epoch, math.nan) if best_epoch is not None else math.nan,
        **{f"dice_{r}": at_best(f"val_dice_{r}") for r in REGIONS},
        "hd95": at_best("val_hd95"),
        "wall_s": run.data.metrics.get("wall_seconds", math.nan),
        # the median over epochs: the first epoch carries data-loading and compile warm-up
        "samples_per_s": float(pd.Series(list(speed.values())).median()) if speed else math.nan,
        "status": run.info.status,
        "run_id": run_id,
        "history": history,
    }
    return row


def _search_all_runs(client: Any, experiment_id: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], max_results=500, page_token=token, order_by=["attributes.start_time"]
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def compare_runs(
    experiment: str,
    *,
    metric: str = "val_mean_dice",
    tracking_uri: str | None = None,
    out_png: Path | None = None,
    mode: str | None = None,
) -> pd.DataFrame:
    """Table of the runs of ``experiment``, best first by ``metric``; optionally a PNG chart.

    Args:
        experiment: MLflow experiment name (the bundle name, e.g. ``brats_seg``).
        metric: per-epoch metric that ranks runs and picks each run's best epoch.
        tracking_uri: MLflow store; ``MLFLOW_TRACKING_URI`` or the local sqlite store by default.
        out_png: where to write the chart (atomically); no chart when ``None``.
        mode: ``max`` or ``min``; from the metric's name when ``None`` (HD95, losses: ``min``).

    Returns:
        One row per run with the columns of :data:`TABLE_COLUMNS` (the metric under its own
        name), ``run_id`` and ``history``; runs that never logged ``metric`` come last.

    Raises:
        ValueError: no such experiment (the message lists those that exist), the experiment has
            no runs, or no run logged ``metric`` (the message lists the metrics there are).
    """
    import mlflow

    from mrivol.tracking.runs import default_tracking_uri

    tracking_uri = tracking_uri or default_tracking_uri()
    if mode not in (None, "max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        raise ValueError(
            f"no experiment {experiment!r} in {tracking_uri}; experiments there: "
            f"{', '.join(names) or 'none'} (the experiment is named after the bundle; "
            "set MLFLOW_TRACKING_URI or --tracking-uri for another store)"
        )
    runs = _search_all_runs(client, found.experiment_id)
    if not runs:
        raise ValueError(
            f"experiment {experiment!r} in {tracking_uri} has no runs yet: "
            f"train one with `make train BUNDLE={experiment}`"
        )
    if not any(metric in r.data.metrics for r in runs):
        logged = sorted({k for r in runs for k in r.data.metrics})
        raise ValueError(
            f"no run of experiment {experiment!r} logged metric {metric!r}; "
            f"metrics logged: {', '.join(logged) or 'none'}"
        )
    mode = mode or metric_mode(metric)
    df = pd.DataFrame([summarize_run(client, r, metric=metric, mode=mode) for r in runs])
    df = df.sort_values(metric, ascending=mode == "min", na_position="last", kind="stable")
    df = df.reset_index(drop=True)
    if out_png is not None:
        plot_comparison(df, out_png, metric=metric)
    return df


def _float_formatter(digits: int):
    return lambda v: "-" if pd.isna(v) else f"{v:.{digits}f}"


def format_comparison(df: pd.DataFrame, *, metric: str = "val_mean_dice") -> str:
    """The table printed by ``mrivol compare`` (NaN shown as ``-``)."""
    columns = [c.format(metric=metric) for c in TABLE_COLUMNS]
    table = df[[c for c in columns if c in df.columns]].copy()
    digits = {"epochs": 0, "best_epoch": 0, "hd95": 1, "wall_s": 1, "samples_per_s": 1}
    formatters = {
        c: _float_formatter(digits.get(c, 3))
        for c in table.columns
        if pd.api.types.is_float_dtype(table[c])
    }
    return table.to_string(index=False, na_rep="-", formatters=formatters)


def plot_comparison(df: pd.DataFrame, out_png: str | Path, *, metric: str) -> Path:
    """Bar chart of Dice per region at each run's best epoch, and ``metric`` per epoch.

    Written with matplotlib's Agg backend, atomically (a half-written PNG never appears).

    Returns:
        ``out_png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    out_png = Path(out_png)
    names = list(df["run_name"])
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(7 + 0.6 * len(names), 4.5))
    width = 0.8 / len(REGIONS)
    x = np.arange(len(names))
    for i, region in enumerate(REGIONS):
        bars.bar(x + (i - 1) * width, df[f"dice_{region}"].fillna(0), width, label=region.upper())
    bars.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
    bars.set_ylim(0, 1)
    bars.set_ylabel(f"Dice at the best {metric} epoch")
    bars.legend(fontsize=8)
    for name, history in zip(names, df["history"], strict=True):
        steps = sorted(history)
        lines.plot(steps, [history[s] for s in steps], marker="o", ms=3, label=name)
    lines.xaxis.set_major_locator(MaxNLocator(integer=True))
    lines.set_xlabel("epoch")
    lines.set_ylabel(metric)
    lines.legend(fontsize=7)
    fig.suptitle(f"{len(names)} runs ranked by {metric}")
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out_png


def add_compare_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``mrivol compare`` to ``parser`` (used by ``mrivol/cli.py``)."""
    parser.add_argument(
        "--experiment", default="brats_seg", help="MLflow experiment = bundle (default brats_seg)"
    )
    parser.add_argument(
        "--metric", default="val_mean_dice", help="ranking metric (default val_mean_dice)"
    )
    parser.add_argument(
        "--mode", choices=("max", "min"), default=None, help="default: min for hd95/loss/seconds"
    )
    parser.add_argument(
        "--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI or the local store"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="PNG chart (default <runs>/compare-<experiment>.png)"
    )
    parser.add_argument("--no-plot", action="store_true", help="print the table only")
    parser.add_argument(
        "--cv",
        action="store_true",
        help="compare the cross-validations (mrivol cv parents) by their pooled OOF metrics "
        "(default metric cv_mean_dice; implied by a cv_* --metric)",
    )
    parser.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    return parser


def main_compare(args: argparse.Namespace) -> int:
    """Run ``mrivol compare``: print the table, write the chart; 2 on a bad experiment/metric."""
    import sys

    from mrivol.io import write_text_atomic
    from mrivol.paths import runs_dir

    out_png = None
    if not getattr(args, "no_plot", False):
        out_png = args.out or runs_dir() / f"compare-{args.experiment}.png"
    if getattr(args, "cv", False) or args.metric.startswith("cv_"):
        from mrivol.tracking.compare_cv import compare_cv_parents, format_cv_comparison

        metric = args.metric if args.metric.startswith("cv_") else "cv_mean_dice"
        try:
            df = compare_cv_parents(
                args.experiment, metric=metric, tracking_uri=args.tracking_uri, out_png=out_png
            )
        except ValueError as err:
            print(f"mrivol compare: error: {err}", file=sys.stderr)
            return 2
        print(f"{len(df)} cross-validations of {args.experiment}, best {metric} first:")
        print(format_cv_comparison(df, metric=metric))
        if out_png is not None:
            print(f"chart: {out_png}")
        return 0
    try:
        df = compare_runs(
            args.experiment,
            metric=args.metric,
            tracking_uri=args.tracking_uri,
            out_png=out_png,
            mode=getattr(args, "mode", None),
        )
    except ValueError as err:
        print(f"mrivol compare: error: {err}", file=sys.stderr)
        return 2
    print(f"{len(df)} runs of {args.experiment}, best {args.metric} first:")
    print(format_comparison(df, metric=args.metric))
    if getattr(args, "csv", None):
        columns = [c.format(metric=args.metric) for c in TABLE_COLUMNS] + ["run_id"]
        write_text_atomic(df[columns].to_csv(index=False), args.csv)
        print(f"table: {args.csv}")
    if out_png is not None:
        print(f"chart: {out_png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_compare(add_compare_arguments(argparse.ArgumentParser()).parse_args()))

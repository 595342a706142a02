"""`mrivol compare` on a store with runs made by MLflow's own client (no training needed)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric, Param

from mrivol.tracking.compare import (
    add_compare_arguments,
    compare_runs,
    format_comparison,
    main_compare,
    metric_mode,
)

# run name -> (params, {metric: [value at epoch 1, 2, 3]}, wall seconds)
# Each run peaks in val_mean_dice at a different epoch, and its region Dice elsewhere are higher
# than at the peak: the table must report the values *at* the peak epoch.
RUNS = {
    "brats_seg-unet-fold0-a": (
        {"network": "unet", "profile": "cpu", "gpus": "1", "amp": "False", "max_epochs": "3"},
        {
            "val_mean_dice": [0.50, 0.80, 0.70],
            "val_dice_tc": [0.40, 0.75, 0.90],
            "val_dice_wt": [0.60, 0.85, 0.70],
            "val_dice_et": [0.50, 0.80, 0.50],
            "val_hd95": [20.0, 8.0, 9.0],
            "samples_per_s": [1.0, 4.0, 6.0],
            "epoch_seconds": [10.0, 9.0, 9.0],
        },
        30.0,
    ),
    "brats_seg-unetr-fold0-b": (
        {
            "network": "unetr",
            "profile": "gpu",
            "gpus": "8",  # GPUs on the host; world_size is what the run used
            "world_size": "2",
            "amp_dtype": "bfloat16",
            "max_epochs": "3",
        },
        {
            "val_mean_dice": [0.60, 0.65, 0.90],
            "val_dice_tc": [0.95, 0.60, 0.85],
            "val_dice_wt": [0.60, 0.70, 0.95],
            "val_dice_et": [0.25, 0.65, 0.90],
            "val_hd95": [15.0, 12.0, 4.0],
            "samples_per_s": [2.0, 20.0, 22.0],
            "epoch_seconds": [5.0, 4.0, 4.0],
        },
        15.0,
    ),
    "brats_seg-dynunet-fold0-c": (
        {"network": "dynunet", "profile": "cpu", "world_size": "1", "amp_dtype": "None"},
        {
            "val_mean_dice": [0.30, 0.20, 0.10],
            "val_dice_tc": [0.30, 0.20, 0.99],
            "val_dice_wt": [0.30, 0.20, 0.10],
            "val_dice_et": [0.30, 0.20, 0.10],
            "val_hd95": [30.0, 40.0, 50.0],
            "samples_per_s": [3.0, 3.0, 3.0],
            "epoch_seconds": [7.0, 7.0, 7.0],
        },
        21.0,
    ),
}
BEST_FIRST = ["brats_seg-unetr-fold0-b", "brats_seg-unet-fold0-a", "brats_seg-dynunet-fold0-c"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An sqlite store with experiment ``brats_seg`` holding the three :data:`RUNS`."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('compare') / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("brats_seg")
    client.create_experiment("other_bundle")
    for i, (name, (params, curves, wall)) in enumerate(RUNS.items()):
        run_id = client.create_run(exp_id, run_name=name, start_time=1000 * i).info.run_id
        metrics = [
            Metric(key, value, timestamp=1_000 * epoch, step=epoch)
            for key, values in curves.items()
            for epoch, value in enumerate(values, start=1)
        ]
        metrics.append(Metric("wall_seconds", wall, timestamp=10_000, step=0))
        client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(run_id)
    # a run that crashed before validating, beside one that validated once
    partial = client.create_experiment("partial")
    crashed = client.create_run(partial, run_name="crashed-before-validation").info.run_id
    client.log_param(crashed, "network", "unet")
    good = client.create_run(partial, run_name="good").info.run_id
    client.log_metric(good, "val_mean_dice", 0.5, step=1)
    return uri


@pytest.fixture(scope="module")
def table(store: str):
    return compare_runs("brats_seg", tracking_uri=store)


def test_runs_sorted_best_first(table):
    assert list(table["run_name"]) == BEST_FIRST
    assert list(table["val_mean_dice"]) == pytest.approx([0.90, 0.80, 0.30])


@pytest.mark.parametrize("name", list(RUNS), ids=["peak_mid", "peak_last", "peak_first"])
def test_region_dice_and_hd95_taken_at_the_best_epoch(table, name):
    _, curves, wall = RUNS[name]
    best = max(range(3), key=lambda i: curves["val_mean_dice"][i])
    row = table.set_index("run_name").loc[name]
    assert row["best_epoch"] == best + 1
    for region in ("tc", "wt", "et"):
        assert row[f"dice_{region}"] == pytest.approx(curves[f"val_dice_{region}"][best])
    assert row["hd95"] == pytest.approx(curves["val_hd95"][best])
    assert row["wall_s"] == pytest.approx(wall)
    assert row["samples_per_s"] == pytest.approx(sorted(curves["samples_per_s"])[1])  # median
    assert row["epochs"] == 3


@pytest.mark.parametrize(
    ("params_of", "expected"),
    [("brats_seg-unet-fold0-a", ("unet", "cpu", "1", "off")),
     ("brats_seg-unetr-fold0-b", ("unetr", "gpu", "2", "bf16")),
     ("brats_seg-dynunet-fold0-c", ("dynunet", "cpu", "1", "off"))],
    ids=["amp_false", "amp_dtype_bfloat16", "amp_dtype_none"],
)  # fmt: skip
def test_params_columns(table, params_of, expected):
    row = table.set_index("run_name").loc[params_of]
    assert (row["network"], row["profile"], row["gpus"], row["amp"]) == expected


def test_lower_is_better_metric_sorts_ascending(store):
    df = compare_runs("brats_seg", metric="val_hd95", tracking_uri=store)
    assert metric_mode("val_hd95") == "min"
    assert list(df["val_hd95"]) == sorted(df["val_hd95"])
    assert list(df["run_name"]) == BEST_FIRST  # the best HD95 epochs are those listed above


def test_run_without_the_metric_comes_last(store):
    df = compare_runs("partial", tracking_uri=store)
    assert list(df["run_name"]) == ["good", "crashed-before-validation"]
    assert math.isnan(df.loc[1, "val_mean_dice"]) and math.isnan(df.loc[1, "dice_tc"])
    assert "-" in format_comparison(df).splitlines()[-1]


def test_png_written_atomically(store, tmp_path):
    out = tmp_path / "charts" / "compare.png"
    compare_runs("brats_seg", tracking_uri=store, out_png=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5_000
    assert [p.name for p in out.parent.iterdir()] == ["compare.png"]  # no temporary left


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"experiment": "nope"}, "experiments there: brats_seg, other_bundle, partial"),
     ({"experiment": "other_bundle"}, "has no runs yet"),
     ({"experiment": "brats_seg", "metric": "val_dice"}, "metrics logged: epoch_seconds")],
    ids=["unknown_experiment", "empty_experiment", "unknown_metric"],
)  # fmt: skip
def test_errors_say_what_exists(store, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare_runs(tracking_uri=store, **kwargs)


def _args(*argv: str) -> argparse.Namespace:
    return add_compare_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_main_prints_table_and_chart(store, tmp_path, capsys):
    out, csv = tmp_path / "c.png", tmp_path / "c.csv"
    code = main_compare(
        _args("--tracking-uri", store, "--out", str(out), "--csv", str(csv))
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    lines = printed.splitlines()
    assert lines[0].startswith("3 runs of brats_seg")
    assert lines[1].split()[:3] == ["run_name", "network", "profile"]
    assert [line.split()[0] for line in lines[2:5]] == BEST_FIRST
    assert out.is_file() and f"chart: {out}" in printed
    assert csv.read_text().splitlines()[1].startswith("brats_seg-unetr-fold0-b,unetr,gpu,2,bf16")


def test_main_unknown_experiment_exits_2(store, capsys):
    assert main_compare(_args("--tracking-uri", store, "--experiment", "x", "--no-plot")) == 2
    assert "no experiment 'x'" in capsys.readouterr().err


def test_default_chart_goes_to_runs_dir(store, isolated_store, capsys):
    assert main_compare(_args("--tracking-uri", store)) == 0
    assert Path(isolated_store / "runs" / "compare-brats_seg.png").is_file()

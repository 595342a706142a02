"""``mrivol evaluate``: score a trained run on its validation fold, log to the same run.

:func:`evaluate` is four named steps: :func:`run_evaluator` (the bundle's ``evaluate.yaml`` in
the preprocessed space), :func:`predict_cases` (inference of the validation cases on each
case's own grid, with ``mc_samples`` MC-dropout samples, :mod:`mrivol.inference`),
:func:`score_predictions` (against the original labels, :mod:`mrivol.evaluation.seg_evaluation`,
with pictures) and :func:`log_to_run` (the training's MLflow run).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrivol.evaluation.report_plots import save_case_figures
from mrivol.evaluation.seg_evaluation import evaluate_segmentations
from mrivol.inference.infer import common_setting, label_convention, run_inference
from mrivol.inference.run_ref import RunRef, resolve_run
from mrivol.paths import bundle_dir, runs_dir
from mrivol.tracking.runs import default_tracking_uri
from mrivol.training.workflow import build_workflow

__all__ = ["evaluate", "log_to_run", "predict_cases", "run_evaluator", "score_predictions"]

METRIC_COLUMNS = (
    "dice",
    "hd95_mm",
    "sensitivity",
    "specificity",
    "qu_score",
    "lesionwise_dice",
    "lesionwise_hd95",
)


def run_evaluator(
    bundle: str, ref: RunRef, manifest: str | Path, out_dir: Path, overrides: Mapping[str, Any]
) -> dict[str, float]:
    """The bundle's evaluator on the run's validation fold; its metrics (``val_per_case.csv``).

    Raises:
        ValueError: the bundle has no ``evaluate.yaml``.
    """
    settings = {
        "bundle_root": str(bundle_dir(bundle)),
        "output_dir": str(out_dir),
        "eval_dir": str(out_dir),
        "manifest": str(Path(manifest).resolve()),
        "fold": ref.fold,
        "checkpoint": str(ref.checkpoint),
        **overrides,
    }
    logging.getLogger("ignite").setLevel(logging.WARNING)
    workflow = build_workflow(
        bundle, "evaluate", profile=ref.profile, net=ref.net, settings=settings
    )
    workflow.initialize()
    workflow.run()
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    metrics = {
        k: float(v) for k, v in evaluator.state.metrics.items() if isinstance(v, (int, float))
    }
    workflow.finalize()
    return metrics


def predict_cases(
    bundle: str,
    ref: RunRef,
    items: Mapping[str, Mapping[str, Any]],
    pred_dir: Path,
    *,
    mc_samples: int,
    overrides: Mapping[str, Any],
) -> None:
    """Segment ``items`` (case id -> datalist item) into ``pred_dir`` on their own grids."""
    datalist = [{k: v for k, v in d.items() if k != "label"} for d in items.values()]
    run_inference(ref, bundle, datalist, pred_dir, mc_samples=int(mc_samples), **overrides)


def score_predictions(
    items: Mapping[str, Mapping[str, Any]],
    pred_dir: Path,
    out_dir: Path,
    *,
    labels: str,
    challenge: str | None = None,
) -> tuple[dict[str, float], list[Path]]:
    """Score the predictions against the original labels; per-region means and the figures.

    Writes ``seg_metrics.csv`` (per case and region; QU-BraTS when uncertainty maps exist;
    lesion-wise Dice / HD95 under ``challenge``'s rules when it is set),
    ``seg_metrics_summary.csv``, ``seg_metrics_boxplot.png``, ``overlay_{best,median,worst}.png``
    and ``uncertainty.png`` to ``out_dir``.

    Raises:
        ValueError: a case could not be scored (the message lists the failures).
    """
    result = evaluate_segmentations(
        pred_dir,
        {c: d["label"] for c, d in items.items()},
        out=out_dir / "seg_metrics.csv",
        labels=labels,
        challenge=challenge,
    )
    if result.failed:
        raise ValueError(
            f"evaluation of {len(result.failed)} case(s) failed: {sorted(result.failed.values())}"
        )
    means = {
        f"{name}_{row['region'].lower()}": row[f"{name}_mean"]
        for row in result.summary
        for name in METRIC_COLUMNS
        if f"{name}_mean" in row
    }
    return means, save_case_figures(result.rows, items, pred_dir, out_dir, labels=labels)


def log_to_run(ref: RunRef, metrics: Mapping[str, float], reports: Sequence[Path]) -> None:
    """``eval_<metric>`` metrics and the report files (``evaluation/``) into the training run."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=ref.tracking_uri)
    for name, value in metrics.items():
        if np.isfinite(value):
            client.log_metric(ref.run_id, f"eval_{name.removeprefix('val_')}", value)
    for artifact in sorted(set(reports)):
        client.log_artifact(ref.run_id, str(artifact), artifact_path="evaluation")


def evaluate(
    *,
    bundle: str,
    run: str,
    data: str | None = None,
    out: str | Path | None = None,
    mc_samples: int = 10,
    overrides: Mapping[str, Any] | None = None,
    tta: bool = False,
    allow_subject_overlap: bool = False,
    **kwargs: Any,
) -> dict[str, float]:
    """Evaluate ``run`` on its fold's validation cases; log metrics and reports to the same run.

    The steps of the module docstring. Metrics are logged as ``eval_*`` (evaluator) and
    ``eval_<metric>_<region>`` (means over the cases on their own grids, lesion-wise ones under
    the bundle's ``lesionwise_rules``).

    Args:
        bundle: bundle name (``brats_seg``).
        run: MLflow run id or checkpoint file.
        data: manifest (default: the run's own).
        out: report folder (default ``<runs>/eval-<run>``).
        mc_samples: MC-dropout samples T of the uncertainty maps (1: none; ``mrivol evaluate
            --mc-samples``).
        overrides: further config overrides (e.g. the ``spacing`` / ``roi_size`` trained with).
        tta: mirror every sliding window (CV parents, :mod:`mrivol.evaluation.evaluate_cv`).
        allow_subject_overlap: classification bundles: score a test manifest that shares
            subjects with the run's training or validation set.
        **kwargs: passed to :func:`mrivol.inference.resolve_run`.

    A ``mrivol cv`` parent run as ``run`` is evaluated as a fold ensemble on the test manifest
    ``data`` (:func:`mrivol.evaluation.evaluate_cv.evaluate_cv`). A classification bundle
    (``ad_cls``) is scored on the test manifest ``data`` after a subject-leakage check
    (:func:`mrivol.evaluation.evaluate_classification.evaluate_classification`).

    Returns:
        The evaluator's metrics plus the per-region means (``dice_et``, ``hd95_mm_wt``, ...).

    Raises:
        ValueError: a checkpoint file without ``data``, or cases that could not be scored.
    """
    from mrivol.data import manifest_settings, to_datalist
    from mrivol.evaluation.evaluate_classification import (
        evaluate_classification,
        is_classification_bundle,
    )
    from mrivol.inference.ensemble import is_cv_parent_run

    if is_classification_bundle(bundle):  # one probability vector per scan: a test-set report
        return evaluate_classification(
            bundle=bundle,
            run=run,
            data=data,
            out=out,
            allow_subject_overlap=allow_subject_overlap,
            overrides=overrides,
            **kwargs,
        )

    uri = kwargs.get("tracking_uri") or default_tracking_uri()
    if is_cv_parent_run(run, tracking_uri=uri):
        from mrivol.evaluation.evaluate_cv import evaluate_cv

        return evaluate_cv(
            bundle=bundle,
            run=run,
            data=data,
            tracking_uri=uri,
            out=out,
            mc_samples=mc_samples,
            tta=tta,
            overrides=overrides,
        )
    ref = resolve_run(run, **kwargs)
    manifest = data or ref.manifest
    if manifest is None:
        raise ValueError(
            "evaluating a checkpoint file needs DATA=<manifest.csv> (the run's manifest is unknown)"
        )
    out_dir = Path(out) if out else runs_dir() / f"eval-{ref.run_id or ref.checkpoint.stem}"
    overrides = {**manifest_settings(manifest), **dict(overrides or {})}  # et_label of the data
    metrics = run_evaluator(bundle, ref, manifest, out_dir, overrides)
    items = {d["case_id"]: d for d in to_datalist(manifest, fold=ref.fold, split="val")}
    pred_dir = out_dir / "predictions"
    predict_cases(bundle, ref, items, pred_dir, mc_samples=mc_samples, overrides=overrides)
    means, figures = score_predictions(
        items,
        pred_dir,
        out_dir,
        labels=label_convention(bundle, overrides.get("et_label")),
        challenge=common_setting(bundle, "lesionwise_rules"),
    )
    metrics.update(means)
    if ref.run_id is not None:
        reports = [*out_dir.glob("*.csv"), *out_dir.glob("*.png"), *figures]
        log_to_run(ref, metrics, reports)
    return metrics

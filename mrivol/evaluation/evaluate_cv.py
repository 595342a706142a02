"""``mrivol evaluate --run <cv parent> --data <test manifest>``: the fold ensemble on new cases.

One inference pass per fold model (:func:`mrivol.inference.ensemble.ensemble_predict`, kept per
fold), then the same test cases scored on their original grids (legacy Dice / HD95 and the
bundle's lesion-wise scores) three ways: each **fold model alone**, the **ensemble** (mean of
the fold probabilities), and the ensemble with the **post-processing** tuned on the OOF
predictions (what ``mrivol infer`` writes). Metrics go to the CV parent run as ``test_*``
(``test_tta_*`` with ``--tta``): ``test_mean_dice`` and ``test_<metric>_<region>`` of the
post-processed ensemble, ``test_raw_mean_dice`` before post-processing,
``test_fold<k>_mean_dice``, ``test_fold_mean_dice_mean`` (mean of the fold models) and
``test_best_fold_mean_dice``; the reports under the artifact folder ``evaluation/``
(``evaluation-tta/``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrivol.evaluation.evaluate import score_predictions
from mrivol.evaluation.seg_evaluation import evaluate_segmentations
from mrivol.inference.ensemble import cv_ensemble, ensemble_predict
from mrivol.inference.infer import common_setting, label_convention
from mrivol.paths import runs_dir

__all__ = ["evaluate_cv", "format_cv_evaluation"]


def _mean_scores(pred_dir: Path, truth: Mapping[str, str], out: Path, **kw: Any) -> dict:
    """Mean Dice (and lesion-wise Dice) over cases and regions of one prediction folder."""
    result = evaluate_segmentations(pred_dir, truth, out=out, boxplot=False, **kw)
    if result.failed:
        raise ValueError(f"{pred_dir}: {len(result.failed)} case(s) failed: {result.failed}")
    scores = {"mean_dice": float(np.mean([r["dice"] for r in result.rows if "dice" in r]))}
    lesionwise = [r["lesionwise_dice"] for r in result.rows if "lesionwise_dice" in r]
    if lesionwise:
        scores["mean_lesionwise_dice"] = float(np.mean(lesionwise))
    return scores


def evaluate_cv(
    *,
    bundle: str,
    run: str,
    data: str | Path | None,
    tracking_uri: str,
    out: str | Path | None = None,
    mc_samples: int = 10,
    tta: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Evaluate the fold ensemble of CV parent ``run`` on every case of manifest ``data``.

    Returns:
        The metrics of the module docstring, without the ``test_`` prefix.

    Raises:
        ValueError: no test manifest, or cases that could not be scored.
    """
    from mrivol.data import to_datalist

    if data is None:
        raise ValueError(
            "evaluating a CV parent needs a test manifest (DATA=test.csv): every fold but one "
            "trained on its own cases; the OOF scores are on the parent run already"
        )
    ensemble = cv_ensemble(run, tracking_uri=tracking_uri)
    items = {d["case_id"]: d for d in to_datalist(data, fold=0, split="all")}
    tag = "tta_" if tta else ""
    out_dir = Path(out) if out else runs_dir() / f"eval-{run}" / ("tta" if tta else "plain")
    pred_dir = out_dir / "predictions"
    labels = label_convention(bundle, ensemble.overrides.get("et_label"))
    challenge = common_setting(bundle, "lesionwise_rules")
    ensemble_predict(
        ensemble,
        [{k: v for k, v in d.items() if k != "label"} for d in items.values()],
        pred_dir,
        regions=[str(r) for r in common_setting(bundle, "regions", ["tc", "wt", "et"])],
        labels=labels,
        tta=tta,
        mc_samples=mc_samples,
        overrides=overrides,
        keep_folds=True,
    )
    truth = {c: d["label"] for c, d in items.items()}
    kw = {"labels": labels, "challenge": challenge}
    metrics: dict[str, float] = {}
    for k in sorted(ensemble.models):
        fold = _mean_scores(pred_dir / "folds" / f"fold{k}", truth, out_dir / f"fold{k}.csv", **kw)
        metrics.update({f"fold{k}_{name}": v for name, v in fold.items()})
    fold_dice = [metrics[f"fold{k}_mean_dice"] for k in sorted(ensemble.models)]
    metrics["fold_mean_dice_mean"] = float(np.mean(fold_dice))
    metrics["best_fold_mean_dice"] = float(np.max(fold_dice))
    raw = _mean_scores(pred_dir / "raw", truth, out_dir / "raw.csv", **kw)
    metrics.update({f"raw_{name}": v for name, v in raw.items()})
    means, figures = score_predictions(items, pred_dir, out_dir, **kw)
    metrics.update(_mean_scores(pred_dir, truth, out_dir / "final.csv", **kw))
    metrics.update(means)
    metrics["n_test_cases"] = float(len(items))
    _log(run, tracking_uri, {f"test_{tag}{k}": v for k, v in metrics.items()}, out_dir, figures)
    return metrics


def _log(
    run: str, uri: str, metrics: Mapping[str, float], out_dir: Path, figures: Sequence[Path]
) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    for name, value in metrics.items():
        if np.isfinite(value):
            client.log_metric(run, name, float(value))
    folder = "evaluation-tta" if out_dir.name == "tta" else "evaluation"
    for path in sorted({*out_dir.glob("*.csv"), *out_dir.glob("*.png"), *figures}):
        client.log_artifact(run, str(path), artifact_path=folder)


def format_cv_evaluation(metrics: Mapping[str, float], *, tta: bool = False) -> str:
    """The comparison ``make evaluate`` prints for a CV parent: folds, ensemble, post-processed."""
    found = (re.fullmatch(r"fold(\d+)_mean_dice", k) for k in metrics)
    folds = sorted(int(m.group(1)) for m in found if m)
    lw = "mean_lesionwise_dice"
    lines = [f"{'model' + (' (TTA)' if tta else ''):<34s} mean Dice  lesion-wise Dice"]

    def line(name: str, dice: float, lesion: float | None) -> None:
        lesion_text = "-" if lesion is None else f"{lesion:.4f}"
        lines.append(f"{name:<34s} {dice:9.4f}  {lesion_text:>16s}")

    for k in folds:
        line(f"fold {k} model", metrics[f"fold{k}_mean_dice"], metrics.get(f"fold{k}_{lw}"))
    line("mean of the fold models", metrics["fold_mean_dice_mean"], None)
    line("best fold model", metrics["best_fold_mean_dice"], None)
    line("ensemble", metrics["raw_mean_dice"], metrics.get(f"raw_{lw}"))
    line("ensemble + post-processing", metrics["mean_dice"], metrics.get(lw))
    return "\n".join(lines)

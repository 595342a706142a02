"""``mrivol cv``: every fold trained as a child run of one parent, OOF predictions, CV metrics.

:func:`cross_validate` is a short sequence of named steps: the data
(:func:`mrivol.training.run.resolve_manifest`), the parent run
(:func:`mrivol.crossval.parent_run.open_cv_parent`), then per fold the training
(:func:`mrivol.crossval.fold_training.train_fold`) and its out-of-fold predictions
(:mod:`mrivol.crossval.oof`), then the pooled metrics and, for segmentation, the post-processing
tuned on the OOF predictions (:mod:`mrivol.crossval.pooling`). The same command again
continues: folds already trained and predicted are skipped, an interrupted fold resumes, the
parent is the same run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrivol.crossval.fold_training import train_fold
from mrivol.crossval.oof import (
    bundle_tasks,
    fold_record,
    predict_oof_outputs,
    predict_oof_segmentation,
    write_fold_record,
)
from mrivol.crossval.parent_run import CvParent, open_cv_parent
from mrivol.crossval.pooling import log_to_parent, pool_oof, tune_postprocessing
from mrivol.crossval.postprocessing_search import PostprocessingSearch
from mrivol.inference.ensemble import OVERRIDES_TAG
from mrivol.tracking.runs import default_tracking_uri, runs_url

__all__ = [
    "BUDGET_MAX_EPOCHS",
    "CvResult",
    "cross_validate",
    "cv_overrides",
    "format_cv_result",
    "manifest_folds",
]

BUDGET_MAX_EPOCHS = 1000  # the epoch cap under --budget-minutes (the budget ends a run first)


@dataclass
class CvResult:
    """What a cross-validation produced (so far: ``complete`` when every fold is in)."""

    bundle: str
    net: str
    parent_run_id: str
    parent_run_name: str
    experiment_id: str
    tracking_uri: str
    output_dir: Path
    folds: dict[int, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    postprocessing: PostprocessingSearch | None = None
    complete: bool = False
    wall_seconds: float = 0.0


def manifest_folds(manifest: str | Path) -> list[int]:
    """The folds of a manifest's real (not synthetic) scans, sorted."""
    from mrivol.data import read_manifest

    df = read_manifest(manifest)
    if "synthetic" in df.columns:
        df = df[df["synthetic"].astype(str).isin(["0", "False", "false", ""])]
    return sorted({int(f) for f in df["fold"]})


def cv_overrides(
    bundle: str,
    *,
    profile: str,
    net: str,
    overrides: Mapping[str, Any] | None,
    epochs: int | None,
    budget_minutes: float | None,
) -> dict[str, Any]:
    """The overrides every fold trains with: the user's, ``max_epochs``, the time budget."""
    from monai.bundle import ConfigParser

    from mrivol.training.workflow import config_files

    out = dict(overrides or {})
    if epochs is not None:
        out["max_epochs"] = int(epochs)
    if budget_minutes is not None:
        if not budget_minutes > 0:
            raise ValueError(f"--budget-minutes must be > 0, got {budget_minutes}")
        parser = ConfigParser()
        files = config_files(bundle, "train", profile=profile, net=net)
        parser.read_config([str(f) for f in files])
        budget = {"_target_": "mrivol.crossval.TimeBudget", "seconds": budget_minutes * 60.0}
        budget["lr_scheduler"] = "@lr_scheduler"
        out["train#bundle_handlers"] = [*parser.get("train#bundle_handlers", []), budget]
        out.setdefault("max_epochs", BUDGET_MAX_EPOCHS)
    return out


def _predict_fold(
    parent: CvParent,
    *,
    bundle: str,
    net: str,
    profile: str,
    fold: int,
    run_id: str,
    manifest: Path,
    overrides: Mapping[str, Any],
    tasks: Mapping[str, Any],
) -> dict[str, Any]:
    """The fold's OOF predictions; its record (``oof/fold<k>.json``)."""
    from mrivol.data import manifest_settings

    common = {"tracking_uri": parent.tracking_uri, "manifest": manifest, "fold": fold}
    record: dict[str, Any] = {"fold": fold, "run_id": run_id}
    if tasks["original_grid"]:
        record["cases"] = predict_oof_segmentation(
            bundle=bundle,
            run_id=run_id,
            oof_dir=parent.oof_dir,
            regions=tasks["regions"],
            overrides={**manifest_settings(manifest), **overrides},
            **common,
        )
    else:
        collected = predict_oof_outputs(
            bundle=bundle, net=net, profile=profile, run_id=run_id, overrides=overrides, **common
        )
        rows = collected.classes or collected.segmentation
        record["cases"] = sorted({r["case"] for r in rows})
        record["classes"] = [{**r, "fold": fold} for r in collected.classes]
        record["segmentation"] = [{**r, "fold": fold} for r in collected.segmentation]
    write_fold_record(parent.oof_dir, fold, record)
    return record


def cross_validate(
    *,
    bundle: str = "brats_seg",
    net: str | None = None,
    folds: Sequence[int] | None = None,
    epochs: int | None = None,
    data: str | Path | None = None,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    gpus: int = 1,
    budget_minutes: float | None = None,
    postprocess: bool = True,
) -> CvResult:
    """Cross-validate ``bundle``/``net``: the steps of the module docstring.

    Args:
        bundle: a supervised bundle (``brats_seg``, ``brats_multitask``, ``ad_cls``).
        net: network overlay; ``None``: the bundle's default.
        folds: folds to train (default: every fold of the manifest).
        epochs: ``max_epochs`` of every fold (default: the profile's).
        data: manifest CSV; ``None``: the profile's phantom set (as ``mrivol train``).
        profile: ``cpu`` or ``gpu``; detected when ``None``.
        overrides: further config overrides of every fold (``--set``).
        tracking_uri: MLflow store (default ``MLFLOW_TRACKING_URI`` or the local store).
        gpus: processes per fold (DDP through torchrun when > 1).
        budget_minutes: wall-time budget per fold (:class:`mrivol.crossval.TimeBudget`).
        postprocess: tune the segmentation post-processing on the OOF predictions.

    Returns:
        The :class:`CvResult`.

    Raises:
        ValueError: a fold the manifest does not have, or OOF cases that cannot be scored.
        RuntimeError: a fold's training failed.
    """
    from mrivol.data import manifest_hash, manifest_settings
    from mrivol.training.run import resolve_manifest
    from mrivol.training.run_tracking import config_hash
    from mrivol.training.workflow import config_files, default_network, detect_profile

    t0 = time.perf_counter()
    profile = profile or detect_profile()
    net = net or default_network(bundle)
    manifest = resolve_manifest(bundle, profile, data).resolve()
    available = manifest_folds(manifest)
    folds = sorted({int(f) for f in folds}) if folds else available
    if unknown := sorted(set(folds) - set(available)):
        raise ValueError(f"{manifest} has no fold(s) {unknown}; its folds: {available}")
    overrides = cv_overrides(
        bundle,
        profile=profile,
        net=net,
        overrides=overrides,
        epochs=epochs,
        budget_minutes=budget_minutes,
    )
    files = config_files(bundle, "train", profile=profile, net=net)
    params = {
        "manifest": str(manifest),
        "manifest_hash": manifest_hash(manifest),
        "config_hash": config_hash(files, overrides),
        "profile": profile,
        "max_epochs": str(overrides.get("max_epochs", "profile")),
        "budget_minutes": str(budget_minutes or ""),
    }
    parent = open_cv_parent(
        bundle=bundle,
        net=net,
        tracking_uri=tracking_uri or default_tracking_uri(),
        params=params,
        tags={
            "mrivol.cv_folds": ",".join(map(str, folds)),
            OVERRIDES_TAG: json.dumps({**manifest_settings(manifest), **overrides}),
        },
    )
    print(
        f"cross-validation of {bundle} / {net} on the {profile} profile: folds "
        f"{', '.join(map(str, folds))} of {manifest}\nparent run {parent.run_name} "
        f"({'continued' if parent.continued else 'new'}) -> {parent.output_dir}",
        flush=True,
    )
    tasks = bundle_tasks(bundle)
    for i, k in enumerate(folds, start=1):
        child = parent.folds().get(k)
        record = fold_record(parent.oof_dir, k)
        head = f"[fold {k}: {i} of {len(folds)}]"
        if child is not None and child.info.status == "FINISHED":
            if record is not None and record.get("run_id") == child.info.run_id:
                print(f"{head} done earlier (run {child.info.run_name}): skipped", flush=True)
                continue
            print(f"{head} trained (run {child.info.run_name}); predicting its cases", flush=True)
            run_id = child.info.run_id
        else:
            print(f"{head} training", flush=True)
            run_id = train_fold(
                parent,
                bundle=bundle,
                net=net,
                fold=k,
                manifest=manifest,
                profile=profile,
                overrides=overrides,
                gpus=gpus,
            )
        record = _predict_fold(
            parent,
            bundle=bundle,
            net=net,
            profile=profile,
            fold=k,
            run_id=run_id,
            manifest=manifest,
            overrides=overrides,
            tasks=tasks,
        )
        print(f"{head} {len(record['cases'])} out-of-fold case(s) predicted", flush=True)
    records = {k: r for k in available if (r := fold_record(parent.oof_dir, k)) is not None}
    scores = pool_oof(parent, bundle, manifest, records, tasks)
    search, extra, files = None, {}, list(scores.files)
    if tasks["original_grid"] and postprocess:
        search, path = tune_postprocessing(parent, bundle, manifest, records)
        extra = {"cv_pp_score_before": search.score_before, "cv_pp_score_after": search.score_after}
        files.append(path)
    wall = time.perf_counter() - t0
    log_to_parent(parent, scores, {**extra, "cv_wall_seconds": wall}, files)
    parent.client.set_terminated(parent.run_id, status="FINISHED")
    return CvResult(
        bundle=bundle,
        net=net,
        parent_run_id=parent.run_id,
        parent_run_name=parent.run_name,
        experiment_id=parent.experiment_id,
        tracking_uri=parent.tracking_uri,
        output_dir=parent.output_dir,
        folds={k: r.info.run_id for k, r in parent.folds().items()},
        metrics={**scores.metrics, **extra},
        postprocessing=search,
        complete=set(records) == set(available),
        wall_seconds=wall,
    )


def format_cv_result(result: CvResult) -> str:
    """The closing summary: the parent, the pooled metrics, the fold spread, post-processing."""
    m = result.metrics
    lines = [
        f"cross-validation {result.parent_run_name}: folds {', '.join(map(str, result.folds))}"
        + ("" if result.complete else " (not every fold of the manifest yet)"),
        f"  MLflow parent run id: {result.parent_run_id} ({len(result.folds)} fold runs)",
    ]
    shown = [k for k in sorted(m) if k.startswith("cv_") and not k.startswith("cv_pp_")]
    lines += [f"    {k}: {m[k]:.4f}" for k in shown]
    if result.postprocessing is not None:
        pp = result.postprocessing
        lines.append(
            f"  post-processing ({pp.score_name}, OOF): {pp.score_before:.4f} -> "
            f"{pp.score_after:.4f}; {pp.rules.describe()}"
        )
    lines.append(f"  outputs: {result.output_dir}")
    if result.tracking_uri.startswith("sqlite:"):
        lines.append(f"  look at it: make mlflow-ui, then open {runs_url(result.experiment_id)}")
    return "\n".join(lines)

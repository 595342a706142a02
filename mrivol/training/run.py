"""``mrivol train``: data, MLflow run, single- or multi-process training, the closing summary.

One process, or one per GPU under torchrun (``gpus > 1`` re-launches through
:func:`torchrun_command`). :func:`train` is a short sequence of named steps: the data
(:func:`resolve_manifest`), the MLflow run (:func:`mrivol.training.run_tracking.open_run`), the
workflow, the network plan (:func:`ensure_plans`), the params (rank 0), then MONAI's workflow.
MONAI's ``MLFlowHandler`` finds the unfinished run by name, logs metrics and artifacts into it
and closes it when training completes; the best weights are then logged as the run's MLflow
model (:func:`mrivol.training.run_tracking.package_model`). A run that raises ends FAILED
(KILLED on Ctrl-C). A run whose process was killed is continued by the same
command, in the same MLflow run, from its last resume checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrivol.paths import bundle_dir
from mrivol.tracking.datasets import log_manifest_datasets
from mrivol.tracking.runs import best_epoch_metrics, default_tracking_uri, runs_url
from mrivol.tracking.system_metrics import node_label, start_system_metrics, stop_system_metrics
from mrivol.training.distributed import barrier, broadcast, init_distributed, rank
from mrivol.training.launch import config_value
from mrivol.training.run_tracking import (
    RunHandle,
    config_hash,
    log_run_params,
    open_run,
    package_model,
)
from mrivol.training.workflow import (
    build_workflow,
    config_files,
    default_network,
    detect_profile,
    profile_synth,
)

__all__ = [
    "TrainResult",
    "case_counts",
    "ensure_plans",
    "format_result",
    "resolve_manifest",
    "torchrun_command",
    "train",
]


@dataclass
class TrainResult:
    """What a training run produced."""

    run_id: str
    run_name: str
    experiment_id: str
    tracking_uri: str
    output_dir: Path
    best_metrics: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    key_metric: str = "val_mean_dice"


def torchrun_command(
    args: Sequence[str],
    *,
    gpus: int,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | None = None,
) -> list[str]:
    """The ``torchrun`` command that runs ``mrivol <args>`` on ``gpus`` processes per node.

    One node: ``--standalone``. Several: static rendezvous at ``master_addr:master_port`` with
    ``--nnodes`` and ``--node_rank`` (torchrun's documented multi-node launch).
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}"]
    if nnodes > 1:
        if not master_addr:
            raise ValueError("multi-node training needs MASTER_ADDR (the address of node 0)")
        cmd += [f"--nnodes={nnodes}", f"--node_rank={node_rank}"]
        cmd += [f"--master_addr={master_addr}", f"--master_port={master_port or 29500}"]
    else:
        cmd.append("--standalone")
    return [*cmd, "-m", "mrivol.cli", *args]


def resolve_manifest(bundle: str, profile: str, data: str | Path | None) -> Path:
    """The manifest to train on: ``data``, or the profile's phantom set (made once, cached).

    Rank 0 synthesises first; the other ranks then find the cached set.

    Raises:
        FileNotFoundError: the manifest does not exist.
    """
    from mrivol.synth import ensure_phantom_manifest

    if data is None:
        if rank() != 0:
            barrier()
        manifest = ensure_phantom_manifest(bundle, profile, profile_synth(bundle, profile))
        if rank() == 0:
            barrier()
    else:
        manifest = Path(data)
    if not manifest.is_file():
        raise FileNotFoundError(f"data manifest {manifest} does not exist")
    return manifest


def ensure_plans(
    parser: Any, manifest: Path, *, why: str = "", workers: int = 1
) -> dict[str, Any] | None:
    """Plan a plan-based network (``plans_file`` in its overlay) once per manifest.

    With the profile's ``plan_geometry: true`` the plan's target spacing and patch size replace
    ``spacing`` and ``roi_size`` (nnU-Net trains at the planned geometry); otherwise only the
    topology is taken from the plan.

    Args:
        parser: the run's config parser.
        manifest: the data the plan is made from (when ``plans_file`` does not exist yet).
        why: appended to the "planning the network" line.
        workers: processes that fingerprint the cases.

    Returns:
        The plans, or ``None`` for networks without a plan.
    """
    if "plans_file" not in parser:
        return None
    from mrivol.planning import plan_manifest, read_plans

    plans_file = Path(parser.get_parsed_content("plans_file"))
    if rank() == 0 and not plans_file.is_file():
        print(f"planning the network from {manifest} -> {plans_file}{why}", flush=True)
        plan_manifest(manifest, plans_file, workers=workers)
    barrier()
    plans = read_plans(plans_file)
    if parser.get("plan_geometry", False):
        parser["spacing"] = list(plans["target_spacing"])
        parser["roi_size"] = list(plans["patch_size"])
    return plans


def case_counts(parser: Any, manifest: Path, fold: int) -> dict[str, int]:
    """``n_train``, ``n_val`` and ``n_synthetic`` (generated samples mixed into training)."""
    from mrivol.data import to_datalist

    n_train = len(to_datalist(manifest, fold=fold, split="train"))
    synthetic = (
        parser.get_parsed_content("synthetic_manifest") if "synthetic_manifest" in parser else None
    )
    with_synthetic = (
        len(to_datalist(manifest, fold=fold, split="train", synthetic=synthetic))
        if synthetic
        else n_train
    )
    return {
        "n_train": n_train,
        "n_val": len(to_datalist(manifest, fold=fold, split="val")),
        "n_synthetic": with_synthetic - n_train,
    }


def train(
    *,
    bundle: str = "brats_seg",
    net: str | None = None,
    data: str | Path | None = None,
    fold: int = 0,
    epochs: int | None = None,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    resume: bool | None = None,
    quiet_monai: bool = True,
    tags: Mapping[str, str] | None = None,
) -> TrainResult | None:
    """Train ``bundle`` and log the run to MLflow.

    Under torchrun (``WORLD_SIZE`` > 1) every rank calls this; ``multi_gpu_train.yaml`` is merged
    and rank 0 alone tracks, checkpoints and returns the result (other ranks return ``None``).

    Args:
        bundle: bundle name under ``bundles/``.
        net: network overlay (``configs/networks/<net>.yaml``); ``None``: the bundle's default.
        data: manifest CSV; ``None`` synthesises (once, cached) the profile's phantom set.
        fold: validation fold.
        epochs: overrides the profile's ``max_epochs``.
        profile: ``cpu`` or ``gpu``; detected when ``None``.
        overrides: further config overrides, e.g.
            ``{"learning_rate": 1e-3, "train#dataloader#batch_size": 4}``.
        tracking_uri: MLflow store; ``MLFLOW_TRACKING_URI`` or the local sqlite store by default.
        resume: ``True``: continue the latest run of this bundle, network, fold, manifest and
            configuration (config files and overrides) that left a resume checkpoint (also a
            finished one, e.g. to train more epochs); ``False``: always a new run; ``None``
            (default): continue such a run that was killed (still "running" in MLflow, with a
            checkpoint), else start a new one.
        quiet_monai: keep ignite's per-iteration INFO logging off (the progress handler reports).
        tags: MLflow tags of the run (set at creation, and again on a resumed run), e.g. the
            ``mlflow.parentRunId`` that nests a cross-validation fold under its parent.

    Returns:
        :class:`TrainResult` with the MLflow run id and the best validation metrics (rank 0).
    """
    from mrivol.data import manifest_hash, to_datalist

    t0 = time.perf_counter()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    profile = profile or detect_profile()
    net = net or default_network(bundle)
    files = config_files(bundle, "train", profile=profile, net=net, distributed=distributed)
    if distributed:
        init_distributed(config_value(files, overrides, "dist_timeout_minutes"))
    lead = rank() == 0  # fixed now: finalize() ends the process group, and rank() with it
    manifest = resolve_manifest(bundle, profile, data)
    hashes = {
        "manifest_hash": manifest_hash(manifest),
        "config_hash": config_hash(files, overrides),
    }
    run = open_run(
        bundle=bundle,
        net=net,
        fold=fold,
        tracking_uri=tracking_uri or default_tracking_uri(),
        resume=resume,
        data_hash=hashes["manifest_hash"],
        settings_hash=hashes["config_hash"],
    )
    run.output_dir.mkdir(parents=True, exist_ok=True)
    if quiet_monai:
        logging.getLogger("ignite").setLevel(logging.WARNING)
    workflow = build_workflow(
        bundle,
        "train",
        profile=profile,
        net=net,
        distributed=distributed,
        settings=_run_settings(bundle, net, fold, profile, manifest, run, epochs, overrides),
    )
    ensure_plans(workflow.parser, manifest)
    counts = case_counts(workflow.parser, manifest, fold)
    if lead and not run.resuming:
        synthetic = workflow.parser.get("synthetic_manifest")
        log_run_params(
            run,
            workflow.parser,
            {
                "bundle": bundle,
                "network": net,
                "profile": profile,
                "fold": str(fold),
                **{k: str(v) for k, v in counts.items()},
                **({"synthetic_manifest_hash": manifest_hash(synthetic)} if synthetic else {}),
                **hashes,
                "overrides": json.dumps(dict(overrides or {}), sort_keys=True, default=str),
                "config_files": ",".join(f"{f.parent.name}/{f.name}" for f in files),
            },
            tags=tags,
        )
        log_manifest_datasets(
            run.client,
            run.run_id,
            manifest=manifest,
            fold=fold,
            manifest_hash=hashes["manifest_hash"],
            splits={s: to_datalist(manifest, fold=fold, split=s) for s in ("train", "val")},
        )
    elif lead and tags:
        for key, value in tags.items():
            run.client.set_tag(run.run_id, key, value)
    barrier()  # the other ranks' (idle) MLflow handlers connect only once the store exists
    if lead:
        print(_announcement(bundle, net, profile, fold, counts, manifest, run), flush=True)
    key_metric = next(iter(workflow.parser.get("validate#key_metric", {"val_mean_dice": None})))
    monitor = _system_metrics(workflow.parser, run)
    try:
        workflow.initialize()
        workflow.run()
        workflow.finalize()
    except BaseException as err:  # the run ends FAILED (KILLED on Ctrl-C), not RUNNING forever
        if lead and run.run_id is not None:
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            run.client.set_terminated(run.run_id, status=status)
        raise
    finally:
        stop_system_metrics(monitor)
    if not lead:
        return None
    package_model(
        run, workflow.parser, bundle=bundle, net=net, profile=profile, fold=fold,
        overrides=overrides,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    run.client.log_metric(run.run_id, "wall_seconds", wall)
    return TrainResult(
        run_id=run.run_id,
        run_name=run.run_name,
        experiment_id=run.experiment_id,
        tracking_uri=run.tracking_uri,
        output_dir=run.output_dir,
        best_metrics=best_epoch_metrics(run.client, run.run_id, key=key_metric),
        key_metric=key_metric,
        wall_seconds=wall,
    )


def _system_metrics(parser: Any, run: RunHandle) -> Any:
    """MLflow's system-metrics monitor on the first process of each node (config switch; a
    collective: every rank calls it, rank 0's run id reaches the other nodes)."""
    if not parser.get("system_metrics", False):
        return None
    run_id = broadcast(run.run_id)
    if int(os.environ.get("LOCAL_RANK", "0")) != 0 or run_id is None:
        return None
    return start_system_metrics(
        run_id,
        run.tracking_uri,
        interval=float(parser.get("system_metrics_interval", 10)),
        resume=run.resuming,
        node_id=node_label(),
    )


def _run_settings(
    bundle: str,
    net: str,
    fold: int,
    profile: str,
    manifest: Path,
    run: RunHandle,
    epochs: int | None,
    overrides: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The config keys ``mrivol train`` sets: paths, the run's identity, what the manifest's
    layout implies (``et_label``, :func:`mrivol.data.manifest_settings`), then the overrides."""
    from mrivol.data import manifest_settings

    return {
        "bundle_root": str(bundle_dir(bundle)),
        "output_dir": str(run.output_dir),
        "manifest": str(manifest.resolve()),
        "fold": fold,
        "net_name": net,
        "profile": profile,
        "tracking_uri": run.tracking_uri,
        "experiment_name": bundle,
        "run_name": run.run_name,
        "resume": run.resuming,
        **({"max_epochs": epochs} if epochs is not None else {}),
        **manifest_settings(manifest),
        **dict(overrides or {}),
    }


def _announcement(
    bundle: str, net: str, profile: str, fold: int, counts: dict, manifest: Path, run: RunHandle
) -> str:
    procs = f" ({os.environ['WORLD_SIZE']} processes)" if "WORLD_SIZE" in os.environ else ""
    extra = f" (+{counts['n_synthetic']} synthetic)" if counts["n_synthetic"] else ""
    return (
        f"{'resuming' if run.resuming else 'training'} {bundle} / {net} on the {profile} profile"
        f"{procs}: fold {fold}, {counts['n_train']} train{extra} / {counts['n_val']} val cases "
        f"from {manifest}\nrun {run.run_name} -> {run.output_dir}"
    )


def format_result(result: TrainResult) -> str:
    """The closing summary: run id, the validation metrics at the best epoch, where to look."""
    m = result.best_metrics
    lines = [
        f"run {result.run_name} finished in {result.wall_seconds / 60:.1f} min",
        f"  MLflow run id: {result.run_id}",
    ]
    if result.key_metric in m:
        lines.append(
            f"  best {result.key_metric} {m[result.key_metric]:.3f} at epoch {int(m['epoch'])}"
        )
        others = [k for k in sorted(m) if k.startswith("val_") and k != result.key_metric]
        lines += [f"    {k}: {m[k]:.3f}" for k in others]
    lines.append(f"  outputs: {result.output_dir}")
    if result.tracking_uri.startswith("sqlite:"):
        lines.append(f"  look at it: make mlflow-ui, then open {runs_url(result.experiment_id)}")
    else:
        lines.append(
            f"  tracking server: {result.tracking_uri} (experiment {result.experiment_id})"
        )
    return "\n".join(lines)

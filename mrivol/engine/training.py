"""``mrivol train``: data, MLflow run, single- or multi-process training, the closing summary.

One process, or one per GPU under torchrun (``gpus > 1`` re-launches through
:func:`torchrun_command`). Rank 0 prepares the data, opens the MLflow run and logs the params;
MONAI's ``MLFlowHandler`` then finds that unfinished run by name, logs metrics and artifacts
into it and closes it when training completes. A run whose process was killed is continued by
the same command, in the same MLflow run, from its last resume checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrivol.engine.distributed import init_distributed, is_distributed, rank
from mrivol.engine.paths import bundle_dir, runs_dir
from mrivol.engine.resume import ResumeCheckpoint
from mrivol.engine.runner import (
    build_workflow,
    config_files,
    default_network,
    detect_profile,
    profile_synth,
)
from mrivol.engine.tracking import (
    best_epoch_metrics,
    default_tracking_uri,
    ensure_experiment,
    environment_params,
    flatten_params,
    git_commit,
    make_run_name,
    runs_url,
)

__all__ = ["TrainResult", "format_result", "torchrun_command", "train"]


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


def _literal_params(parser: Any) -> dict[str, str]:
    """Every hyperparameter in the merged config, ``@id`` references to literals resolved."""
    from monai.bundle.utils import ID_REF_KEY

    config = {k: v for k, v in parser.config.items() if k not in ("imports", "_meta_")}
    resolved = {}
    for key, value in flatten_params(config).items():
        if value.startswith(ID_REF_KEY) and value[1:] in parser:
            target = parser[value[1:]]
            if not isinstance(target, (dict, list)) or len(str(target)) < 200:
                value = str(target)
        resolved[key] = value
    return resolved


def config_hash(files: Sequence[Path], overrides: Mapping[str, Any] | None) -> str:
    """A short hash of a run's configuration: its config files' text and its ``--set`` overrides.

    Editing a bundle file or passing other overrides changes it; the order of the overrides
    does not.
    """
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.parent.name}/{f.name}\n".encode())
        h.update(Path(f).read_bytes())
    h.update(json.dumps(dict(overrides or {}), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _resumable_run(
    client: Any,
    experiment_id: str,
    net: str,
    fold: int,
    *,
    unfinished_only: bool,
    data_hash: str,
    settings_hash: str,
) -> Any | None:
    """The newest run of this network and fold whose directory holds a resume checkpoint.

    Only a run of the same manifest (``data_hash``) and the same configuration (``settings_hash``,
    :func:`config_hash`) qualifies: a run is never continued on other data or another
    configuration. With
    ``unfinished_only`` (automatic resume), only a run MLflow still lists as running — one whose
    process was killed — qualifies.
    """
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"params.network = '{net}' and params.fold = '{fold}' and "
            f"params.manifest_hash = '{data_hash}' and params.config_hash = '{settings_hash}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    for run in runs:
        if unfinished_only and run.info.status != "RUNNING":
            continue
        if ResumeCheckpoint.exists(runs_dir() / run.info.run_name / "checkpoints"):
            return run
    return None


def _broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not is_distributed():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _barrier() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


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

    Returns:
        :class:`TrainResult` with the MLflow run id and the best validation metrics (rank 0).
    """
    import mlflow

    from mrivol.data import manifest_hash, to_datalist
    from mrivol.engine.default_data import ensure_phantom_manifest

    t0 = time.perf_counter()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        init_distributed()
    lead = rank() == 0
    profile = profile or detect_profile()
    net = net or default_network(bundle)
    files = config_files(bundle, "train", profile=profile, net=net, distributed=distributed)
    if data is None:  # rank 0 synthesises first; the others then find the cached set
        if not lead:
            _barrier()
        manifest = ensure_phantom_manifest(bundle, profile, profile_synth(bundle, profile))
        if lead:
            _barrier()
    else:
        manifest = Path(data)
    if not manifest.is_file():
        raise FileNotFoundError(f"data manifest {manifest} does not exist")
    tracking_uri = tracking_uri or default_tracking_uri()
    run_id = experiment_id = client = None
    run_name = make_run_name(bundle, net, fold)
    if lead:  # only rank 0 touches the tracking store
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        experiment_id = ensure_experiment(bundle, tracking_uri)
        previous = None
        if resume is not False:
            previous = _resumable_run(
                client,
                experiment_id,
                net,
                fold,
                unfinished_only=resume is None,
                data_hash=manifest_hash(manifest),
                settings_hash=config_hash(files, overrides),
            )
        if previous is not None:
            run_id, run_name = previous.info.run_id, previous.info.run_name
            if previous.info.status != "RUNNING":  # reopen, so MLFlowHandler logs into it
                client.update_run(run_id, status="RUNNING")
            elif resume is None:
                print(f"run {run_name} was interrupted: resuming it (--new-run starts afresh)")
        elif resume:
            print(f"nothing to resume for {bundle}/{net}/fold{fold}: new run", flush=True)
    run_name = _broadcast(run_name)
    resuming = _broadcast(run_id is not None)
    output_dir = runs_dir() / run_name
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "bundle_root": str(bundle_dir(bundle)),
        "output_dir": str(output_dir),
        "manifest": str(manifest.resolve()),
        "fold": fold,
        "net_name": net,
        "profile": profile,
        "tracking_uri": tracking_uri,
        "experiment_name": bundle,
        "run_name": run_name,
        "resume": resuming,
        **({"max_epochs": epochs} if epochs is not None else {}),
        **dict(overrides or {}),
    }
    if quiet_monai:
        logging.getLogger("ignite").setLevel(logging.WARNING)
    workflow = build_workflow(
        bundle, "train", profile=profile, net=net, settings=settings, distributed=distributed
    )
    parser = workflow.parser
    if "plans_file" in parser:  # networks built from an nnU-Net-style plan: plan once per manifest
        plans_file = Path(parser.get_parsed_content("plans_file"))
        if lead and not plans_file.is_file():
            from mrivol.engine.planning import plan_manifest

            print(f"planning the network from {manifest} -> {plans_file}", flush=True)
            plan_manifest(manifest, plans_file)
        _barrier()
    n_train = len(to_datalist(manifest, fold=fold, split="train"))
    n_val = len(to_datalist(manifest, fold=fold, split="val"))
    synthetic = (
        parser.get_parsed_content("synthetic_manifest") if "synthetic_manifest" in parser else None
    )
    n_synthetic = (
        len(to_datalist(manifest, fold=fold, split="train", synthetic=synthetic)) - n_train
        if synthetic
        else 0
    )
    if lead and not resuming:
        params = {
            **_literal_params(parser),
            "bundle": bundle,
            "bundle_version": str(parser.get("_meta_#version", "unknown")),
            "network": net,
            "profile": profile,
            "fold": str(fold),
            "n_train": str(n_train),
            "n_val": str(n_val),
            "n_synthetic": str(n_synthetic),
            **({"synthetic_manifest_hash": manifest_hash(synthetic)} if synthetic else {}),
            "world_size": os.environ.get("WORLD_SIZE", "1"),
            "manifest_hash": manifest_hash(manifest),
            "config_hash": config_hash(files, overrides),
            "git_commit": git_commit(),
            "config_files": ",".join(f"{f.parent.name}/{f.name}" for f in files),
            **environment_params(),
        }
        parser.export_config_file(parser.config, str(output_dir / "config.yaml"), fmt="yaml")
        run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
        client.log_batch(run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])
    _barrier()  # the other ranks' (idle) MLflow handlers connect only once the store exists
    if lead:
        procs = f" ({os.environ['WORLD_SIZE']} processes)" if distributed else ""
        print(
            f"{'resuming' if resuming else 'training'} {bundle} / {net} on the {profile} profile"
            f"{procs}: fold {fold}, {n_train} train"
            f"{f' (+{n_synthetic} synthetic)' if n_synthetic else ''} / {n_val} val cases from "
            f"{manifest}\n"
            f"run {run_name} -> {output_dir}",
            flush=True,
        )
    key_metric = next(iter(parser.get("validate#key_metric", {"val_mean_dice": None})))
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    if not lead:
        return None
    wall = time.perf_counter() - t0
    client.log_metric(run_id, "wall_seconds", wall)
    return TrainResult(
        run_id=run_id,
        run_name=run_name,
        experiment_id=experiment_id,
        tracking_uri=tracking_uri,
        output_dir=output_dir,
        best_metrics=best_epoch_metrics(client, run_id, key=key_metric),
        key_metric=key_metric,
        wall_seconds=wall,
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

"""The MLflow side of ``mrivol train``: find a run to resume, open the run, log its params.

Only rank 0 touches the tracking store; :func:`open_run` returns the same :class:`RunHandle`
(run name, whether it resumes) on every rank.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrivol.paths import runs_dir
from mrivol.tracking.runs import (
    ensure_experiment,
    environment_params,
    flatten_params,
    git_commit,
    make_run_name,
)
from mrivol.tracking.stale_runs import STALE_TAG, fix_stale_runs, process_tags
from mrivol.tracking.store import prepare_store
from mrivol.training.distributed import broadcast, rank
from mrivol.training.resume import ResumeCheckpoint

__all__ = ["RunHandle", "config_hash", "find_resumable_run", "log_run_params", "open_run"]


@dataclass
class RunHandle:
    """The MLflow run a training logs into (``client`` and ``run_id`` on rank 0 only)."""

    run_name: str
    resuming: bool
    tracking_uri: str
    experiment_id: str | None = None
    run_id: str | None = None
    client: Any = None

    @property
    def output_dir(self) -> Path:
        """``<runs>/<run name>``: checkpoints, reports, the resolved config."""
        return runs_dir() / self.run_name


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


def find_resumable_run(
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
    configuration. With ``unfinished_only`` (automatic resume), only a run whose process was
    killed qualifies: MLflow still lists it as running, or :func:`fix_stale_runs` marked it.
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
        # killed: still RUNNING, or marked KILLED as stale (:mod:`mrivol.tracking.stale_runs`)
        killed = run.info.status == "RUNNING" or STALE_TAG in run.data.tags
        if unfinished_only and not killed:
            continue
        if ResumeCheckpoint.exists(runs_dir() / run.info.run_name / "checkpoints"):
            return run
    return None


def open_run(
    *,
    bundle: str,
    net: str,
    fold: int,
    tracking_uri: str,
    resume: bool | None,
    data_hash: str,
    settings_hash: str,
) -> RunHandle:
    """The run to log into: a resumable one (see ``mrivol train --resume``) or a new name.

    A new run is created later, by :func:`log_run_params`, once the config is known. Called on
    every rank; rank 0 decides and broadcasts.
    """
    handle = RunHandle(make_run_name(bundle, net, fold), False, tracking_uri)
    if rank() == 0:
        import mlflow

        prepare_store(tracking_uri)  # before any client: concurrent first runs migrate it once
        handle.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        handle.experiment_id = ensure_experiment(bundle, tracking_uri)
        for run in fix_stale_runs(handle.client, [handle.experiment_id]):
            print(f"run {run.info.run_name} was left RUNNING by a killed process: marked KILLED")
        previous = None
        if resume is not False:
            previous = find_resumable_run(
                handle.client,
                handle.experiment_id,
                net,
                fold,
                unfinished_only=resume is None,
                data_hash=data_hash,
                settings_hash=settings_hash,
            )
        if previous is not None:
            handle.run_id, handle.run_name = previous.info.run_id, previous.info.run_name
            handle.resuming = True
            if previous.info.status != "RUNNING":  # reopen, so MLFlowHandler logs into it
                handle.client.update_run(handle.run_id, status="RUNNING")
            for key, value in process_tags().items():  # this process logs it now
                handle.client.set_tag(handle.run_id, key, value)
            if STALE_TAG in previous.data.tags:  # alive again: no longer a killed run
                handle.client.delete_tag(handle.run_id, STALE_TAG)
            if resume is None:
                print(
                    f"run {handle.run_name} was interrupted: resuming it (--new-run starts afresh)"
                )
        elif resume:
            print(f"nothing to resume for {bundle}/{net}/fold{fold}: new run", flush=True)
    handle.run_name, handle.resuming = broadcast((handle.run_name, handle.resuming))
    return handle


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


def log_run_params(
    handle: RunHandle,
    parser: Any,
    extra: Mapping[str, str],
    *,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Create the new run (rank 0, with ``tags``) and log every hyperparameter, ``extra`` and
    provenance.

    The resolved config is written to ``<output_dir>/config.yaml`` (an artifact at the end).
    """
    import mlflow

    params = {
        **_literal_params(parser),
        "bundle_version": str(parser.get("_meta_#version", "unknown")),
        **extra,
        "world_size": os.environ.get("WORLD_SIZE", "1"),
        "git_commit": git_commit(),
        **environment_params(),
    }
    parser.export_config_file(parser.config, str(handle.output_dir / "config.yaml"), fmt="yaml")
    handle.run_id = handle.client.create_run(
        handle.experiment_id, run_name=handle.run_name, tags={**process_tags(), **(tags or {})}
    ).info.run_id
    handle.client.log_batch(
        handle.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()]
    )

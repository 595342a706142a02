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
from mrivol.tracking.stale_runs import STALE_TAG, fix_stale_runs, process_alive, process_tags
from mrivol.tracking.store import prepare_store
from mrivol.training.distributed import broadcast, rank
from mrivol.training.resume import ResumeCheckpoint

__all__ = [
    "RunHandle",
    "claim_run_name",
    "config_hash",
    "find_resumable_run",
    "log_run_params",
    "open_run",
    "package_model",
]


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
        if process_alive(run):  # another process is training it right now: never shared
            continue
        # killed: still RUNNING, or marked KILLED as stale (:mod:`mrivol.tracking.stale_runs`)
        killed = run.info.status == "RUNNING" or STALE_TAG in run.data.tags
        if unfinished_only and not killed:
            continue
        if ResumeCheckpoint.exists(runs_dir() / run.info.run_name / "checkpoints"):
            return run
    return None


def claim_run_name(name: str) -> str:
    """``name``, or ``name-2``, ``name-3``, ... : the first whose output folder this process made.

    Run names have a one-second timestamp; trainings of one network and fold started in the
    same second (several at once on one machine) would otherwise share a name, an output folder
    and, through MONAI's ``MLFlowHandler`` (which finds its run by name), an MLflow run.
    ``mkdir`` is atomic: exactly one process gets each name.
    """
    runs_dir().mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        candidate = name if i == 1 else f"{name}-{i}"
        try:
            (runs_dir() / candidate).mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"no free run name after {name}-999 in {runs_dir()}")


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
        else:
            if resume:
                print(f"nothing to resume for {bundle}/{net}/fold{fold}: new run", flush=True)
            handle.run_name = claim_run_name(handle.run_name)
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


def package_model(
    handle: RunHandle,
    parser: Any,
    *,
    bundle: str,
    net: str,
    profile: str,
    fold: int,
    overrides: Mapping[str, Any] | None,
) -> str | None:
    """Log the run's best weights as its MLflow model, with the inference configuration (rank 0).

    The network of the run (``network_def``) gets the best weights (``<ckpt_dir>/model.pt``)
    and is logged by :func:`mrivol.tracking.models.log_network` with one patch of the training
    size as input example (``roi_size``, or ``input_size`` for whole-volume bundles), the
    bundle's inference config files and the settings that rebuild its configuration (for a
    plan-based network its plan, and under ``plan_geometry`` the planned spacing and patch).
    ``--set log_model=false`` (or ``log_model: false`` in a config) turns it off.

    Returns:
        The model URI, or ``None`` when nothing was logged (switched off, no best checkpoint,
        or a network whose output is not one tensor; the reason is printed).
    """
    import torch

    from mrivol.paths import bundle_dir
    from mrivol.tracking.models import log_network
    from mrivol.training.workflow import config_files

    if not parser.get("log_model", True) or "network_def" not in parser:
        return None
    best = Path(parser.get_parsed_content("ckpt_dir")) / "model.pt"
    size_key = next((k for k in ("roi_size", "input_size") if k in parser), None)
    if not best.is_file() or size_key is None:
        print(f"no MLflow model logged: no best checkpoint {best} or patch size", flush=True)
        return None
    try:
        files = config_files(bundle, "inference", profile=profile, net=net)
    except ValueError:  # a bundle without inference.yaml: the network alone
        files = []
    files = [*files, bundle_dir(bundle) / "configs" / "metadata.json"] if files else []
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(best, map_location="cpu", weights_only=True))
    overrides = dict(overrides or {})
    extra = {}
    if "plans" in parser:  # a plan-based network: the plan travels with it (no manifest needed)
        extra["plans"] = parser.get_parsed_content("plans")
        if parser.get("plan_geometry", False):  # trained at the planned spacing and patch
            overrides |= {k: parser.get_parsed_content(k) for k in ("spacing", "roi_size")}
    settings = {
        "bundle": bundle,
        "net": net,
        "profile": profile,
        "fold": fold,
        "overrides": overrides,
        "config_files": [f.name for f in files],
        "run_id": handle.run_id,
        **extra,
    }
    try:
        return log_network(
            network,
            run_id=handle.run_id,
            tracking_uri=handle.tracking_uri,
            patch_size=[int(s) for s in parser.get_parsed_content(size_key)],
            in_channels=int(parser.get_parsed_content("in_channels")),
            settings=settings,
            files=files,
        )
    except ValueError as err:
        print(f"no MLflow model logged: {err}", flush=True)
        return None

"""Run a bundle: assemble its config files and overrides, run the MONAI workflow, report.

``mrivol train`` (and ``make train``) call :func:`train`. The bundle stays a stock MONAI bundle:
this module only picks the files (``common.yaml``, the workflow file, ``profiles/<profile>.yaml``,
``networks/<net>.yaml``), sets overrides, prepares MLflow and prints the outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrivol.engine.paths import bundle_dir, runs_dir
from mrivol.engine.tracking import (
    default_tracking_uri,
    ensure_experiment,
    environment_params,
    flatten_params,
    git_commit,
    make_run_name,
    runs_url,
)

__all__ = [
    "TrainResult",
    "available_networks",
    "build_workflow",
    "config_files",
    "detect_profile",
    "format_result",
    "train",
]

PROFILES = ("cpu", "gpu")
# the workflow files merged after common.yaml: evaluation reuses train.yaml's `validate` section
WORKFLOW_CHAINS = {
    "train": ("train",),
    "evaluate": ("train", "evaluate"),
    "inference": ("inference",),
}


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


def detect_profile() -> str:
    """``gpu`` when CUDA is available, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def available_networks(bundle: str) -> list[str]:
    """Network overlays of a bundle (``configs/networks/*.yaml``)."""
    return sorted(p.stem for p in (bundle_dir(bundle) / "configs" / "networks").glob("*.yaml"))


def config_files(bundle: str, workflow: str, *, profile: str, net: str) -> list[Path]:
    """The config files of a run, in merge order.

    Raises:
        ValueError: unknown profile or network (the message lists the valid ones).
    """
    configs = bundle_dir(bundle) / "configs"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    nets = available_networks(bundle)
    if net not in nets:
        raise ValueError(
            f"bundle {bundle!r} has no network {net!r}; choose one of {', '.join(nets)}"
        )
    chain = WORKFLOW_CHAINS.get(workflow)
    if chain is None:
        raise ValueError(
            f"unknown workflow {workflow!r}; choose one of {', '.join(WORKFLOW_CHAINS)}"
        )
    files = [configs / "common.yaml", *(configs / f"{name}.yaml" for name in chain)]
    files += [configs / "profiles" / f"{profile}.yaml", configs / "networks" / f"{net}.yaml"]
    return files


def build_workflow(
    bundle: str, workflow: str, *, profile: str, net: str, settings: Mapping[str, Any]
) -> Any:
    """A :class:`monai.bundle.ConfigWorkflow` over the run's config files, ``settings`` applied."""
    from monai.bundle import ConfigWorkflow

    # overlays live in configs/profiles and configs/networks by design; MONAI warns about that
    logging.getLogger("monai.bundle.workflows").setLevel(logging.ERROR)
    return ConfigWorkflow(
        config_file=[str(f) for f in config_files(bundle, workflow, profile=profile, net=net)],
        meta_file=str(bundle_dir(bundle) / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type="train"
        if workflow == "train"
        else "infer"
        if workflow == "inference"
        else "eval",
        **settings,
    )


def _literal_params(parser: Any) -> dict[str, str]:
    """Every hyperparameter in the merged config, with ``@id`` references to literals resolved."""
    from monai.bundle.utils import ID_REF_KEY

    flat = flatten_params(
        {k: v for k, v in parser.config.items() if k not in ("imports", "_meta_")}
    )
    resolved = {}
    for key, value in flat.items():
        if value.startswith(ID_REF_KEY) and value[1:] in parser:
            target = parser[value[1:]]
            value = (
                str(target)
                if not isinstance(target, (dict, list)) or len(str(target)) < 200
                else value
            )
        resolved[key] = value
    return resolved


def profile_synth(bundle: str, profile: str) -> Mapping[str, Any]:
    from monai.bundle import ConfigParser

    config = ConfigParser.load_config_file(
        bundle_dir(bundle) / "configs" / "profiles" / f"{profile}.yaml"
    )
    if "synth" not in config:
        raise ValueError(
            f"profile {profile!r} of bundle {bundle!r} has no `synth` section: "
            "pass DATA=manifest.csv"
        )
    return config["synth"]


def train(
    *,
    bundle: str = "brats_seg",
    net: str = "unet",
    data: str | Path | None = None,
    fold: int = 0,
    epochs: int | None = None,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    quiet_monai: bool = True,
) -> TrainResult:
    """Train ``bundle`` and log the run to MLflow.

    Args:
        bundle: bundle name under ``bundles/``.
        net: network overlay (``configs/networks/<net>.yaml``).
        data: manifest CSV; ``None`` synthesises (once, cached) the profile's phantom set.
        fold: validation fold.
        epochs: overrides the profile's ``max_epochs``.
        profile: ``cpu`` or ``gpu``; detected when ``None``.
        overrides: further config overrides, e.g.
            ``{"learning_rate": 1e-3, "train#dataloader#batch_size": 4}``.
        tracking_uri: MLflow store; ``MLFLOW_TRACKING_URI`` or the local sqlite store by default.
        quiet_monai: keep MONAI's per-iteration INFO logging off (the progress handler reports).

    Returns:
        :class:`TrainResult` with the MLflow run id and the best validation metrics.
    """
    import mlflow

    from mrivol.data import manifest_hash, to_datalist
    from mrivol.engine.default_data import ensure_phantom_manifest
    from mrivol.engine.handlers import ValidationReport

    t0 = time.perf_counter()
    profile = profile or detect_profile()
    files = config_files(bundle, "train", profile=profile, net=net)
    manifest = (
        Path(data)
        if data
        else ensure_phantom_manifest(bundle, profile, profile_synth(bundle, profile))
    )
    if not manifest.is_file():
        raise FileNotFoundError(f"data manifest {manifest} does not exist")
    tracking_uri = tracking_uri or default_tracking_uri()
    run_name = make_run_name(bundle, net, fold)
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
        **({"max_epochs": epochs} if epochs is not None else {}),
        **dict(overrides or {}),
    }
    if quiet_monai:
        logging.getLogger("ignite").setLevel(logging.WARNING)
    workflow = build_workflow(bundle, "train", profile=profile, net=net, settings=settings)
    parser = workflow.parser
    n_train = len(to_datalist(manifest, fold=fold, split="train"))
    n_val = len(to_datalist(manifest, fold=fold, split="val"))
    params = {
        **_literal_params(parser),
        "bundle": bundle,
        "bundle_version": str(parser.get("_meta_#version", "unknown")),
        "network": net,
        "profile": profile,
        "fold": str(fold),
        "n_train": str(n_train),
        "n_val": str(n_val),
        "manifest_hash": manifest_hash(manifest),
        "git_commit": git_commit(),
        "config_files": ",".join(f"{f.parent.name}/{f.name}" for f in files),
        **environment_params(),
    }
    parser.export_config_file(parser.config, str(output_dir / "config.yaml"), fmt="yaml")
    experiment_id = ensure_experiment(bundle, tracking_uri)
    # Open the run and log its params here: MONAI's MLFlowHandler then finds this unfinished run
    # by name, logs metrics and artifacts into it and closes it when training completes.
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    client.log_batch(run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])
    print(
        f"training {bundle} / {net} on the {profile} profile: fold {fold}, "
        f"{n_train} train / {n_val} val cases from {manifest}\nrun {run_name} -> {output_dir}",
        flush=True,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    wall = time.perf_counter() - t0

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([experiment_id], filter_string=f"attributes.run_name = '{run_name}'")
    if not runs:
        raise RuntimeError(
            f"the workflow finished but MLflow has no run named {run_name} in {tracking_uri}"
        )
    run_id = runs[0].info.run_id
    client.log_metric(run_id, "wall_seconds", wall)
    report = next(
        h for h in parser.get_parsed_content("validate#handlers") if isinstance(h, ValidationReport)
    )
    return TrainResult(
        run_id=run_id,
        run_name=run_name,
        experiment_id=experiment_id,
        tracking_uri=tracking_uri,
        output_dir=output_dir,
        best_metrics=report.best_metrics,
        wall_seconds=wall,
    )


def format_result(result: TrainResult, *, regions: Sequence[str] = ("tc", "wt", "et")) -> str:
    """The closing summary: run id, best metrics, and how to look at the run."""
    m = result.best_metrics
    lines = [
        f"run {result.run_name} finished in {result.wall_seconds / 60:.1f} min",
        f"  MLflow run id: {result.run_id}",
    ]
    if m:
        dice = ", ".join(f"{r.upper()} {m.get(f'val_dice_{r}', float('nan')):.3f}" for r in regions)
        lines.append(
            f"  best validation mean Dice {m.get('val_mean_dice', float('nan')):.3f} ({dice}) "
            f"at epoch {m.get('epoch')}"
        )
        if "val_hd95" in m:
            lines.append(f"  HD95 at that epoch: {m['val_hd95']:.2f} mm")
    lines.append(f"  outputs: {result.output_dir}")
    if result.tracking_uri.startswith("sqlite:"):
        lines.append(f"  look at it: make mlflow-ui, then open {runs_url(result.experiment_id)}")
    else:
        lines.append(
            f"  tracking server: {result.tracking_uri} (experiment {result.experiment_id})"
        )
    return "\n".join(lines)

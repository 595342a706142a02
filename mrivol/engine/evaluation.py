"""Evaluate a trained run on its validation fold, and segment new scans with it.

A run is named by its MLflow run id (its params say which network, profile, fold and manifest
it used, and its ``model.pt`` artifact holds the best weights) or by a checkpoint path (then
network, profile and fold come from the arguments).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrivol.engine.paths import bundle_dir, runs_dir
from mrivol.engine.runner import build_workflow, detect_profile
from mrivol.engine.tracking import default_tracking_uri

__all__ = ["RunRef", "resolve_run", "evaluate", "infer"]


@dataclass
class RunRef:
    """A trained model: its checkpoint and the settings it was trained with."""

    checkpoint: Path
    net: str
    profile: str
    fold: int
    manifest: str | None
    run_id: str | None
    tracking_uri: str


def resolve_run(
    run: str,
    *,
    net: str = "unet",
    profile: str | None = None,
    fold: int = 0,
    tracking_uri: str | None = None,
) -> RunRef:
    """Find the checkpoint and settings of ``run`` (an MLflow run id or a checkpoint file).

    Raises:
        FileNotFoundError: ``run`` is neither an existing file nor a run id in the store.
    """
    tracking_uri = tracking_uri or default_tracking_uri()
    path = Path(run)
    if path.is_file():
        return RunRef(path, net, profile or detect_profile(), fold, None, None, tracking_uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        info = client.get_run(run)
    except MlflowException as err:
        raise FileNotFoundError(
            f"{run!r} is neither a checkpoint file nor an MLflow run id in {tracking_uri}"
        ) from err
    params = info.data.params
    local = runs_dir() / info.info.run_name / "checkpoints" / "model.pt"
    if local.is_file():
        checkpoint = local
    else:
        checkpoint = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run, artifact_path="model.pt", tracking_uri=tracking_uri
            )
        )
    return RunRef(
        checkpoint=checkpoint,
        net=params.get("network", net),
        profile=params.get("profile", profile or detect_profile()),
        fold=int(params.get("fold", fold)),
        manifest=params.get("manifest"),
        run_id=run,
        tracking_uri=tracking_uri,
    )


def evaluate(
    *, bundle: str, run: str, data: str | None = None, out: str | Path | None = None, **kwargs: Any
) -> dict[str, float]:
    """Evaluate ``run`` on its fold's validation cases; log ``eval_*`` metrics to the same run.

    Returns:
        The evaluator's metrics (mean Dice, per region, HD95).
    """
    ref = resolve_run(run, **kwargs)
    manifest = data or ref.manifest
    if manifest is None:
        raise ValueError(
            "evaluating a checkpoint file needs DATA=<manifest.csv> (the run's manifest is unknown)"
        )
    out_dir = Path(out) if out else runs_dir() / f"eval-{ref.run_id or ref.checkpoint.stem}"
    settings = {
        "bundle_root": str(bundle_dir(bundle)),
        "output_dir": str(out_dir),
        "eval_dir": str(out_dir),
        "manifest": str(Path(manifest).resolve()),
        "fold": ref.fold,
        "checkpoint": str(ref.checkpoint),
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
    if ref.run_id is not None:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=ref.tracking_uri)
        for name, value in metrics.items():
            client.log_metric(ref.run_id, f"eval_{name.removeprefix('val_')}", value)
        for artifact in sorted(out_dir.glob("*.csv")) + sorted(out_dir.glob("*.png")):
            client.log_artifact(ref.run_id, str(artifact), artifact_path="evaluation")
    return metrics


def infer(
    *, bundle: str, run: str, input: str | Path, out: str | Path, **kwargs: Any
) -> list[Path]:
    """Segment every case of the manifest ``input``; write ``<out>/<case>_seg.nii.gz``.

    Returns:
        The written label maps, on each input's own grid.
    """
    ref = resolve_run(run, **kwargs)
    out = Path(out)
    settings = {
        "bundle_root": str(bundle_dir(bundle)),
        "output_dir": str(out),
        "pred_dir": str(out),
        "manifest": str(Path(input).resolve()),
        "checkpoint": str(ref.checkpoint),
    }
    logging.getLogger("ignite").setLevel(logging.WARNING)
    workflow = build_workflow(
        bundle, "inference", profile=ref.profile, net=ref.net, settings=settings
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return sorted(out.glob("*_seg.nii.gz"))

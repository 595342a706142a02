"""A trained model named by its MLflow run id or by a checkpoint file, and its settings.

A run id is looked up in the tracking store: its params say which network, profile, fold and
manifest it used, and its ``model.pt`` (in the local runs folder, else downloaded from the
run's artifacts) holds the best weights. A checkpoint path takes the settings from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mrivol.paths import runs_dir
from mrivol.tracking.runs import default_tracking_uri
from mrivol.training.workflow import detect_profile

__all__ = ["RunRef", "resolve_run"]


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

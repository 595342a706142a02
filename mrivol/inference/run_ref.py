"""A trained model named by its MLflow run id, a registered model URI or a checkpoint file.

* A **run id** is looked up in the tracking store: its params say which network, profile, fold,
  manifest and ``--set`` overrides it used, and its ``model.pt`` (in the local runs folder, else
  downloaded from the run's artifacts) holds the best weights.
* A **model URI** (``models:/NAME@champion``, ``models:/NAME/3``, ``runs:/RUN/model``) is an
  MLflow model packaged at the end of training (:mod:`mrivol.tracking.models`): the network,
  its settings and the bundle's inference config files travel with it, so inference runs the
  configuration the model was trained with (:func:`model_workflow`).
* A **checkpoint path** takes the settings from the caller.

The training overrides that inference applies are the top-level ones (``spacing``,
``roi_size``, ``sw_batch_size``, ...); nested ones (``train#...``) only concern training.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrivol.paths import cache_dir, runs_dir
from mrivol.tracking.models import inference_overrides
from mrivol.tracking.runs import default_tracking_uri
from mrivol.training.workflow import detect_profile

__all__ = ["MODEL_URI_SCHEMES", "RunRef", "inference_overrides", "model_workflow", "resolve_run"]

MODEL_URI_SCHEMES = ("models:/", "runs:/")


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
    overrides: dict[str, Any] = field(default_factory=dict)  # training's, for inference
    network: Any = None  # the packaged network (model URIs), else built from the config
    config_files: list[Path] = field(default_factory=list)  # shipped with a packaged model
    meta_file: Path | None = None


def _resolve_model(uri: str, tracking_uri: str) -> RunRef:
    """A packaged MLflow model: network, settings, shipped configs; weights as a checkpoint."""
    import torch

    from mrivol.tracking.models import load_packaged_model

    (cache_dir() / "models").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="model-", dir=cache_dir() / "models"))
    model = load_packaged_model(uri, tracking_uri=tracking_uri, dst=work / "model")
    settings = model.settings
    if not settings.get("net"):
        raise ValueError(f"model {uri}: no mrivol settings in its MLmodel metadata")
    checkpoint = work / "model.pt"
    torch.save(model.network.state_dict(), checkpoint)
    files = model.config_files()
    meta = next((f for f in model.files_dir.glob("metadata.json")), None)
    return RunRef(
        checkpoint=checkpoint,
        net=settings["net"],
        profile=settings.get("profile", detect_profile()),
        fold=int(settings.get("fold", 0)),
        manifest=None,
        run_id=model.run_id,
        tracking_uri=tracking_uri,
        overrides=inference_overrides(settings.get("overrides")),
        network=model.network,
        config_files=files,
        meta_file=meta,
    )


def resolve_run(
    run: str,
    *,
    net: str = "unet",
    profile: str | None = None,
    fold: int = 0,
    tracking_uri: str | None = None,
) -> RunRef:
    """Find the checkpoint and settings of ``run`` (run id, model URI or checkpoint file).

    Raises:
        FileNotFoundError: ``run`` is neither an existing file, a model in the store nor a run
            id in the store.
    """
    tracking_uri = tracking_uri or default_tracking_uri()
    if run.startswith(MODEL_URI_SCHEMES):
        return _resolve_model(run, tracking_uri)
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
            f"{run!r} is neither a checkpoint file, a model URI (models:/NAME@alias) nor an "
            f"MLflow run id in {tracking_uri}"
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
        overrides=inference_overrides(json.loads(params.get("overrides", "{}"))),
    )


def model_workflow(ref: RunRef, settings: dict[str, Any]) -> Any:
    """The inference ``ConfigWorkflow`` of a packaged model: its shipped configs, its network."""
    from monai.bundle import ConfigWorkflow

    return ConfigWorkflow(
        config_file=[str(f) for f in ref.config_files],
        meta_file=str(ref.meta_file) if ref.meta_file else None,
        logging_file=False,
        workflow_type="infer",
        **{**settings, "network_def": ref.network},
    )

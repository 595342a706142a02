"""A trained network as an MLflow model: packaged with its configuration, registered, loaded.

At the end of training the best weights are logged as an MLflow model (:func:`log_network`,
flavour ``mlflow.pytorch``) named ``model`` in the run, with

* a **signature** of float32 tensors ``(B, C, H, W, D)`` whose batch and spatial sizes are free
  (``-1``): sliding-window inference feeds it windows, exports take any size;
* an **input example**: one zero patch of the training size;
* the **configuration that travels with the model**: as MLmodel ``metadata`` (bundle, network,
  profile, fold, the ``--set`` overrides, the merge order of the config files) and as extra
  files (the bundle's inference config files and ``metadata.json``), so that
  ``mrivol infer --model models:/NAME@champion`` segments with the configuration the model was
  trained with, not with whatever the checkout holds today.

``mrivol register --run RUN --name NAME [--alias champion]`` registers it
(:func:`register_run_model`); :func:`load_packaged_model` reads any ``models:/NAME@alias``,
``models:/NAME/<version>`` or ``runs:/RUN/model`` URI back.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MODEL_NAME",
    "PackagedModel",
    "inference_overrides",
    "load_packaged_model",
    "log_network",
    "model_signature",
    "register_run_model",
    "run_model_uri",
    "tracking_uri_context",
]

MODEL_NAME = "model"  # the MLflow model's name in a training run: runs:/<run id>/model
METADATA_KEY = "mrivol"  # MLmodel metadata section


@contextlib.contextmanager
def tracking_uri_context(uri: str) -> Iterator[None]:
    """Use ``uri`` for MLflow's fluent API inside the block, then restore the previous setting.

    ``mlflow.set_tracking_uri`` is process-global; MLflow's own ``_use_tracking_uri`` restores
    it (also when it was unset, so ``MLFLOW_TRACKING_URI`` keeps working afterwards).
    """
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield


TRAINING_ONLY = ("train", "validate", "max_epochs", "optimizer", "lr_scheduler")


def inference_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The training overrides inference applies: geometry, network (``network_def#...``), not
    the sections only training has (:data:`TRAINING_ONLY`).

    Examples:
        >>> inference_overrides({"roi_size": [32] * 3, "network_def#dropout": 0.0,
        ...                      "train#dataloader#batch_size": 4})
        {'roi_size': [32, 32, 32], 'network_def#dropout': 0.0}
    """
    return {k: v for k, v in (overrides or {}).items() if k.split("#")[0] not in TRAINING_ONLY}


def run_model_uri(run_id: str) -> str:
    """``runs:/<run id>/model``: the model a training run logged."""
    return f"runs:/{run_id}/{MODEL_NAME}"


def model_signature(in_channels: int, out_channels: int, *, spatial_dims: int = 3) -> Any:
    """Float32 tensors ``(B, C, *spatial)`` in and out, batch and spatial sizes free."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    free = (-1,) * spatial_dims
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, in_channels, *free))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, out_channels, *free))]),
    )


def _requirements() -> list[str]:
    """The pins the model needs (given, so that MLflow does not infer them in a subprocess)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("torch", "monai", "mlflow", "mrivol"):
        with contextlib.suppress(PackageNotFoundError):
            pins.append(f"{package}=={version(package).split('+')[0]}")
    return pins


def log_network(
    network: Any,
    *,
    run_id: str,
    tracking_uri: str,
    patch_size: Sequence[int],
    in_channels: int,
    settings: Mapping[str, Any],
    files: Sequence[str | Path] = (),
) -> str:
    """Log ``network`` (eval mode, on the CPU) as the MLflow model ``model`` of ``run_id``.

    Args:
        network: the trained ``torch.nn.Module`` returning one tensor ``(B, C_out, ...)``.
        run_id: the training run (reopened for the logging, then finished again).
        tracking_uri: its store.
        patch_size: the training patch; the input example is one zero patch of this size.
        in_channels: input channels ``C``.
        settings: what inference needs to rebuild the run's configuration (bundle, net,
            profile, fold, overrides, config_files), stored as the MLmodel's metadata.
        files: config files shipped inside the model (``extra_files/<name>``; names unique).

    Returns:
        The model URI ``runs:/<run id>/model``.

    Raises:
        ValueError: the network does not return a single tensor (nothing is logged).
    """
    import mlflow
    import numpy as np
    import torch

    network = network.cpu().eval()
    example = np.zeros((1, in_channels, *patch_size), dtype=np.float32)
    with torch.no_grad():
        out = network(torch.from_numpy(example))
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"{type(network).__name__} returns {type(out).__name__}, not one tensor: "
            "mlflow.pytorch models take and return one tensor; the model was not logged"
        )
    metadata = {METADATA_KEY: json.loads(json.dumps(dict(settings), default=str))}
    signature = model_signature(in_channels, int(out.shape[1]), spatial_dims=out.ndim - 2)
    with tracking_uri_context(tracking_uri), mlflow.start_run(run_id=run_id):
        mlflow.pytorch.log_model(
            network,
            name=MODEL_NAME,
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(),
            metadata=metadata,
            extra_files=[str(Path(f).resolve()) for f in files],
            serialization_format="pickle",  # an nn.Module: MC dropout switches its dropout on
        )
    return run_model_uri(run_id)


def _logged_model_id(client: Any, run_id: str) -> str:
    """The id of the MLflow model ``model`` that ``run_id`` logged (the newest one)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise FileNotFoundError(f"no MLflow run {run_id!r} in {client.tracking_uri}") from err
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'",
        order_by=[{"field_name": "creation_time", "ascending": False}],
    )
    if not models:
        raise FileNotFoundError(
            f"run {run.info.run_name} ({run_id}) logged no MLflow model {MODEL_NAME!r}: it was "
            "trained with log_model: false, by an older mrivol, or did not finish"
        )
    return models[0].model_id


def register_run_model(
    run_id: str, name: str, *, alias: str | None = None, tracking_uri: str
) -> Any:
    """Register the model of training run ``run_id`` as a new version of ``name``.

    Args:
        run_id: a run that logged ``model`` (every finished ``mrivol train`` run does).
        name: registered model name (created when missing).
        alias: e.g. ``champion``; moved to the new version.
        tracking_uri: the store (its model registry).

    Returns:
        The :class:`mlflow.entities.model_registry.ModelVersion`.

    Raises:
        FileNotFoundError: no such run, or the run logged no model.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    model_id = _logged_model_id(client, run_id)
    with tracking_uri_context(tracking_uri):
        version = mlflow.register_model(f"models:/{model_id}", name)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return version


@dataclass
class PackagedModel:
    """An MLflow model read back: the network, its settings and its shipped config files."""

    uri: str
    network: Any
    settings: dict[str, Any]
    files_dir: Path
    run_id: str | None
    input_shape: tuple[int, ...] = ()  # the signature's (-1, C, -1, -1, -1)

    def config_files(self) -> list[Path]:
        """The shipped config files in merge order (``settings["config_files"]``)."""
        return [self.files_dir / name for name in self.settings.get("config_files", [])]


def load_packaged_model(
    uri: str, *, tracking_uri: str, dst: str | Path | None = None
) -> PackagedModel:
    """Download and load ``uri`` (``models:/NAME@alias``, ``models:/NAME/3``, ``runs:/RUN/model``).

    Raises:
        FileNotFoundError: no such model, version or alias in the store.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    if dst is not None:
        Path(dst).mkdir(parents=True, exist_ok=True)
    with tracking_uri_context(tracking_uri):
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=dst))
        except MlflowException as err:
            raise FileNotFoundError(f"model {uri!r} not found in {tracking_uri}: {err}") from err
        network = mlflow.pytorch.load_model(str(local), map_location="cpu")
    info = Model.load(str(local / "MLmodel"))
    settings = dict((info.metadata or {}).get(METADATA_KEY, {}))
    shape = tuple(info.signature.inputs.inputs[0].shape) if info.signature else ()
    return PackagedModel(
        uri, network.eval(), settings, local / "extra_files", info.run_id, input_shape=shape
    )

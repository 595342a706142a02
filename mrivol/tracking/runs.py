"""MLflow tracking: the default store, run names, experiment set-up and run parameters.

Metrics, params and artifacts are written by MONAI's :class:`monai.handlers.MLFlowHandler`
during a run; this module only prepares what it needs and reads runs back with MLflow's own
client. No tracking store is written by hand.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from mrivol.paths import project_root

__all__ = [
    "default_tracking_uri",
    "make_run_name",
    "ensure_experiment",
    "flatten_params",
    "git_commit",
    "runs_url",
    "best_epoch_metrics",
    "environment_params",
]

MAX_PARAM_CHARS = 500  # long values (lists of transforms) are cut; the full config is an artifact


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a sqlite store in ``<root>/mlruns/mlflow.db``."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    store = project_root() / "mlruns"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def make_run_name(bundle: str, net: str, fold: int, *, timestamp: float | None = None) -> str:
    """Run name ``<bundle>-<net>-fold<k>-<YYYYmmdd-HHMMSS>``.

    Examples:
        >>> make_run_name("brats_seg", "unet", 0, timestamp=0).startswith("brats_seg-unet-fold0-")
        True
    """
    stamp = time.strftime(
        "%Y%m%d-%H%M%S", time.localtime(time.time() if timestamp is None else timestamp)
    )
    return f"{bundle}-{net}-fold{fold}-{stamp}"


def ensure_experiment(name: str, tracking_uri: str) -> str:
    """Return the id of experiment ``name``, creating it if needed.

    For a local sqlite store the artifacts go next to the database (``mlruns/artifacts``) rather
    than to MLflow's default ``./mlruns`` relative to whatever directory a run starts in. Safe
    when several processes call it at once on a new store (:mod:`mrivol.tracking.store`).
    """
    import mlflow

    from mrivol.tracking.store import create_experiment_once, prepare_store, sqlite_path

    prepare_store(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    db = sqlite_path(tracking_uri)
    location = (db.parent / "artifacts").as_uri() if db is not None else None
    return create_experiment_once(client, name, artifact_location=location)


def flatten_params(config: Mapping[str, Any], *, prefix: str = "") -> dict[str, str]:
    """Flatten a nested config into MLflow params ``{"a.b.c": "value"}``.

    Lists of dicts (transform chains, handler lists) are flattened by position under their key;
    values are stringified and cut to ``MAX_PARAM_CHARS``.
    """
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                flat.update(flatten_params(item, prefix=f"{name}.{i}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_CHARS]
    return flat


def git_commit() -> str:
    """The checkout's commit (``+dirty`` when the tree has changes), or ``unknown``."""
    try:
        root = project_root()
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def environment_params() -> dict[str, str]:
    """Versions that decide reproducibility: python, torch, MONAI, CUDA, host CPU count."""
    import monai
    import torch

    return {
        "python_version": platform.python_version(),
        "torch_version": str(torch.__version__),
        "monai_version": str(monai.__version__),
        "cuda": str(torch.version.cuda) if torch.cuda.is_available() else "none",
        "gpus": str(torch.cuda.device_count()),
        "cpu_count": str(os.cpu_count()),
    }


def runs_url(experiment_id: str, *, host: str = "127.0.0.1", port: int = 5000) -> str:
    """Link to the experiment's training runs (MLflow 3 opens on the GenAI view otherwise)."""
    return f"http://{host}:{port}/#/experiments/{experiment_id}/runs"


def best_epoch_metrics(client: Any, run_id: str, *, key: str = "val_mean_dice") -> dict[str, float]:
    """Every metric of ``run_id`` at the step where ``key`` peaked, plus ``epoch``.

    Read from MLflow's metric history, so it holds for resumed runs too.
    """
    history = client.get_metric_history(run_id, key)
    if not history:
        return {}
    best = max(history, key=lambda m: (m.value, -m.step))
    out = {"epoch": float(best.step)}
    for name in client.get_run(run_id).data.metrics:
        values = [m.value for m in client.get_metric_history(run_id, name) if m.step == best.step]
        if values:
            out[name] = values[-1]
    return out

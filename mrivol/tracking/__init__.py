"""Tracking: MLflow runs, the tracking server, and runs compared side by side.

* :mod:`~mrivol.tracking.runs`: the default store, run names, experiments, run parameters.
* :mod:`~mrivol.tracking.server`: MLflow's own server on a loopback port (sqlite, PostgreSQL).
* :mod:`~mrivol.tracking.datasets`: the manifest's splits as MLflow dataset inputs.
* :mod:`~mrivol.tracking.system_metrics`: MLflow's system metrics (CPU, memory, GPU) of a run.
* :mod:`~mrivol.tracking.store`: a sqlite store shared by concurrent runs (made once, WAL).
* :mod:`~mrivol.tracking.stale_runs`: runs left RUNNING by killed processes, marked KILLED.
* :mod:`~mrivol.tracking.models`: the run's MLflow model, the registry (``mrivol register``).
* :mod:`~mrivol.tracking.export`: ``mrivol export``, TorchScript / ONNX with a parity check.
* :mod:`~mrivol.tracking.compare`: ``mrivol compare``, a table and chart of an experiment.
"""

from __future__ import annotations

from mrivol.tracking.compare import (
    REGIONS,
    compare_runs,
    format_comparison,
    plot_comparison,
    summarize_run,
)
from mrivol.tracking.runs import (
    best_epoch_metrics,
    default_tracking_uri,
    ensure_experiment,
    environment_params,
    flatten_params,
    git_commit,
    make_run_name,
    runs_url,
)
from mrivol.tracking.server import (
    MlflowServer,
    free_port,
    mlflow_server,
    redact,
    server_command,
    start_mlflow_server,
    stop_mlflow_server,
)

__all__ = [
    "MlflowServer",
    "REGIONS",
    "best_epoch_metrics",
    "compare_runs",
    "default_tracking_uri",
    "ensure_experiment",
    "environment_params",
    "flatten_params",
    "format_comparison",
    "free_port",
    "git_commit",
    "make_run_name",
    "mlflow_server",
    "plot_comparison",
    "redact",
    "runs_url",
    "server_command",
    "start_mlflow_server",
    "stop_mlflow_server",
    "summarize_run",
]

"""CPU, memory, disk, network and GPU use of a training run, through MLflow's system metrics.

MLflow's :class:`~mlflow.system_metrics.system_metrics_monitor.SystemMetricsMonitor` samples
with psutil (and NVIDIA's NVML through ``nvidia-ml-py`` when a GPU is present) in a background
thread and logs ``system/cpu_utilization_percentage``, ``system/system_memory_usage_megabytes``,
``system/gpu_0_utilization_percentage``, ``system/gpu_0_memory_usage_megabytes``, ... every
``interval`` seconds, one step per sample. The fluent ``mlflow.start_run(log_system_metrics=True)``
starts the same monitor; training runs are opened through MONAI's ``MLFlowHandler`` and
``MlflowClient`` instead, so :func:`start_system_metrics` starts it for a run id. On a multi-node
run each node's first process samples its own machine and labels its metrics
``system/node<k>/...`` (:func:`node_label`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["node_label", "start_system_metrics", "stop_system_metrics"]


def node_label() -> str | None:
    """``node<NODE_RANK>`` on a multi-node run (``NNODES`` > 1), else ``None``.

    Examples:
        >>> os.environ.pop("NNODES", None) and None
        >>> node_label() is None
        True
    """
    nnodes = os.environ.get("NNODES") or "1"
    return f"node{os.environ.get('NODE_RANK') or 0}" if int(nnodes) > 1 else None


def start_system_metrics(
    run_id: str,
    tracking_uri: str,
    *,
    interval: float = 10.0,
    resume: bool = False,
    node_id: str | None = None,
) -> Any | None:
    """Start sampling this machine into ``run_id`` every ``interval`` seconds.

    Args:
        run_id: the MLflow run.
        tracking_uri: its store.
        interval: seconds between samples (each sample is one logged step).
        resume: continue the steps of a resumed run after its last system-metric step.
        node_id: label of this machine's metrics (``system/<node_id>/...``); see
            :func:`node_label`.

    Returns:
        The running monitor (stop it with :func:`stop_system_metrics`), or ``None`` when psutil
        is missing (a warning says what to install).
    """
    try:
        import psutil  # noqa: F401
    except ModuleNotFoundError:
        logging.getLogger(__name__).warning(
            "system metrics not logged: psutil is missing (pip install psutil)"
        )
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop INFO
    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=interval,
        resume_logging=resume,
        node_id=node_id,
        tracking_uri=tracking_uri,
    )
    monitor.start()
    return monitor


def stop_system_metrics(monitor: Any | None) -> None:
    """Stop ``monitor`` (from :func:`start_system_metrics`) and write what it still holds."""
    if monitor is not None:
        monitor.finish()

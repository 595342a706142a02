"""Runs left RUNNING by a killed process: who owns a run, whether it is alive, marking it KILLED.

A process killed with ``kill -9`` (or a node that lost power) never tells MLflow that its run
ended, so the run stays RUNNING forever. Every training run is therefore created with the
identity of the process that logs it (:func:`process_tags`: host, pid and the pid's start time,
so that a recycled pid is not mistaken for the run's process). A RUNNING run whose process is
gone on this host is *stale*; :func:`fix_stale_runs` marks it ``KILLED`` (MLflow's own status
for a run that was stopped) and records why in the tag ``mrivol.stale``. ``mrivol train`` does
this before it looks for a run to resume, and ``mrivol runs --fix-stale`` on demand. Runs
logged from another host cannot be checked from here and are left alone.

Examples:
    >>> sorted(process_tags())
    ['mrivol.host', 'mrivol.pid', 'mrivol.pid_start']
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any

__all__ = [
    "HOST_TAG",
    "PID_TAG",
    "START_TAG",
    "STALE_TAG",
    "find_stale_runs",
    "fix_stale_runs",
    "process_alive",
    "process_tags",
]

HOST_TAG = "mrivol.host"
PID_TAG = "mrivol.pid"
START_TAG = "mrivol.pid_start"  # the process's start time (seconds since the epoch)
STALE_TAG = "mrivol.stale"  # why a run was marked KILLED


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started, or ``None`` when there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return float("nan")  # it exists; its start time is hidden from us


def process_tags(pid: int | None = None) -> dict[str, str]:
    """The tags that name the process logging a run (this one by default)."""
    pid = os.getpid() if pid is None else pid
    start = _start_time(pid)
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        START_TAG: "" if start is None else f"{start:.3f}",
    }


def process_alive(run: Any) -> bool | None:
    """Whether the process that logs ``run`` still runs: ``None`` when it cannot be told.

    ``None`` for a run without :func:`process_tags` (logged by something else) or logged from
    another host; ``False`` when its pid is gone, or now belongs to a process that started at
    another time (a recycled pid).
    """
    tags = run.data.tags
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None
    start = _start_time(int(tags[PID_TAG]))
    if start is None:
        return False
    recorded = tags.get(START_TAG, "")
    if not recorded or start != start:  # no start time recorded, or hidden (AccessDenied)
        return True
    return abs(float(recorded) - start) < 1.0


def find_stale_runs(client: Any, experiment_ids: Sequence[str]) -> list[Any]:
    """The RUNNING runs of ``experiment_ids`` whose process is gone (see :func:`process_alive`)."""
    if not experiment_ids:
        return []
    runs = client.search_runs(
        list(experiment_ids), filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    return [run for run in runs if process_alive(run) is False]


def fix_stale_runs(
    client: Any, experiment_ids: Sequence[str], *, status: str = "KILLED"
) -> list[Any]:
    """Mark every stale run of ``experiment_ids`` as ``status`` (``KILLED`` or ``FAILED``).

    Returns:
        The runs that were marked (as they were before).
    """
    stale = find_stale_runs(client, experiment_ids)
    for run in stale:
        tags = run.data.tags
        why = f"process {tags[PID_TAG]} on {tags[HOST_TAG]} ended without closing the run"
        client.set_tag(run.info.run_id, STALE_TAG, why)
        client.set_terminated(run.info.run_id, status=status)
    return stale

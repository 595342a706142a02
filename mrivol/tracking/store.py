"""The tracking store shared by concurrent runs: a sqlite database made once, experiments made once.

Several ``mrivol train`` processes may start together on one store (five networks on five
GPUs, folds in parallel). MLflow's SQL store already waits on a busy sqlite database (it sets
``PRAGMA busy_timeout = 20000`` on every session), but two things still break when processes
start at the same moment, both measured with three processes on a fresh database:

* each process finds the new database empty and runs MLflow's schema migrations: all but one
  fail (``duplicate column name: step``). :func:`prepare_store` creates and migrates the
  database under an exclusive file lock (``<db>.lock``) before any client uses it, and switches
  it to sqlite's write-ahead log (readers no longer wait for a writer);
* each process finds the experiment missing and creates it: all but one fail
  (``RESOURCE_ALREADY_EXISTS``). :func:`create_experiment_once` reads it back instead.

A tracking server (``http://...``, PostgreSQL behind it) serialises both itself.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from mrivol.io import exclusive_lock

__all__ = ["create_experiment_once", "prepare_store", "sqlite_path"]

_prepared: set[str] = set()


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, ``None`` for any other store.

    Examples:
        >>> sqlite_path("sqlite:////tmp/m/mlflow.db"), sqlite_path("http://127.0.0.1:5000")
        (PosixPath('/tmp/m/mlflow.db'), None)
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def prepare_store(tracking_uri: str) -> None:
    """Create and migrate a sqlite store once, under a file lock; a no-op for other stores.

    Idempotent, and cheap after the first call in a process.
    """
    path = sqlite_path(tracking_uri)
    if path is None or tracking_uri in _prepared:
        return
    import mlflow

    with exclusive_lock(f"{path}.lock"):
        mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)  # migrates
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: set once per database file
    _prepared.add(tracking_uri)


def create_experiment_once(client: Any, name: str, *, artifact_location: str | None) -> str:
    """Create experiment ``name``, or return its id when another process just created it."""
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id

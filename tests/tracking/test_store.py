"""The sqlite store shared by concurrent runs: made once, in WAL mode; experiments made once."""

from __future__ import annotations

import sqlite3

import mlflow

from mrivol.tracking.runs import ensure_experiment
from mrivol.tracking.store import create_experiment_once


def test_a_fresh_sqlite_store_is_made_once_in_wal_mode(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    first = ensure_experiment("brats_seg", uri)
    assert ensure_experiment("brats_seg", uri) == first  # found, not created again
    with sqlite3.connect(tmp_path / "new" / "mlflow.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    client = mlflow.MlflowClient(uri)
    # another process created it a moment ago: read back, not RESOURCE_ALREADY_EXISTS
    assert create_experiment_once(client, "brats_seg", artifact_location=None) == first

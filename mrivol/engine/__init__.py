"""Running bundles: device profiles, the runner, MLflow tracking and handlers."""

from __future__ import annotations

from mrivol.engine.evaluation import RunRef, evaluate, infer, resolve_run
from mrivol.engine.handlers import EpochStatsHandler, ProgressHandler, ValidationReport
from mrivol.engine.io import atomic_path, case_output_name, write_csv_atomic, write_text_atomic
from mrivol.engine.paths import available_bundles, bundle_dir, cache_dir, project_root, runs_dir
from mrivol.engine.runner import (
    TrainResult,
    available_networks,
    config_files,
    detect_profile,
    format_result,
    train,
)
from mrivol.engine.tracking import (
    default_tracking_uri,
    ensure_experiment,
    flatten_params,
    git_commit,
    make_run_name,
    runs_url,
)

__all__ = [
    "EpochStatsHandler",
    "ProgressHandler",
    "TrainResult",
    "ValidationReport",
    "RunRef",
    "atomic_path",
    "case_output_name",
    "evaluate",
    "infer",
    "resolve_run",
    "available_bundles",
    "available_networks",
    "bundle_dir",
    "cache_dir",
    "config_files",
    "default_tracking_uri",
    "detect_profile",
    "ensure_experiment",
    "flatten_params",
    "format_result",
    "git_commit",
    "make_run_name",
    "project_root",
    "runs_dir",
    "runs_url",
    "train",
    "write_csv_atomic",
    "write_text_atomic",
]

"""Running bundles: device profiles, the runner, MLflow tracking and handlers."""

from __future__ import annotations

from mrivol.engine.classification_report import (
    BalancedAccuracy,
    ClassificationReportHandler,
    gradcam_pp,
    inverse_frequency_weights,
)
from mrivol.engine.distributed import (
    destroy_distributed,
    distributed_device,
    init_distributed,
    on_rank0,
    rank_partition,
    wrap_ddp,
)
from mrivol.engine.evaluation import RunRef, evaluate, infer, resolve_run
from mrivol.engine.handlers import EpochStatsHandler, ProgressHandler, ValidationReport
from mrivol.engine.paths import available_bundles, bundle_dir, cache_dir, project_root, runs_dir
from mrivol.engine.precision import AutocastInferer, cuda_amp, cuda_amp_kwargs
from mrivol.engine.resume import BestCheckpoint, BestMetricState, RandomStates, ResumeCheckpoint
from mrivol.engine.runner import available_networks, build_workflow, config_files, detect_profile
from mrivol.engine.seg_evaluation import (
    GridMismatchError,
    check_same_grid,
    evaluate_segmentations,
)
from mrivol.engine.tracking import (
    best_epoch_metrics,
    default_tracking_uri,
    ensure_experiment,
    flatten_params,
    git_commit,
    make_run_name,
    runs_url,
)
from mrivol.engine.training import TrainResult, format_result, torchrun_command, train
from mrivol.engine.transfer_learning import (
    FreezeEncoder,
    load_encoder_weights,
    set_encoder_trainable,
)
from mrivol.engine.uncertainty import McDropoutPredictor, predictive_uncertainty
from mrivol.io import atomic_path, case_output_name, write_csv_atomic, write_text_atomic

__all__ = [
    "GridMismatchError",
    "McDropoutPredictor",
    "check_same_grid",
    "evaluate_segmentations",
    "predictive_uncertainty",
    "BalancedAccuracy",
    "ClassificationReportHandler",
    "FreezeEncoder",
    "gradcam_pp",
    "inverse_frequency_weights",
    "load_encoder_weights",
    "set_encoder_trainable",
    "AutocastInferer",
    "BestCheckpoint",
    "BestMetricState",
    "RandomStates",
    "ResumeCheckpoint",
    "cuda_amp",
    "cuda_amp_kwargs",
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
    "best_epoch_metrics",
    "build_workflow",
    "destroy_distributed",
    "distributed_device",
    "init_distributed",
    "on_rank0",
    "rank_partition",
    "torchrun_command",
    "wrap_ddp",
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

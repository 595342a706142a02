"""Training: the run, its workflow, resume, distribution, precision and handlers.

* :mod:`~mrivol.training.run`: ``mrivol train`` as a short sequence of named steps.
* :mod:`~mrivol.training.workflow`: which bundle config files, merged into a ConfigWorkflow.
* :mod:`~mrivol.training.resume`: exact resume checkpoints, best weights.
* :mod:`~mrivol.training.distributed`: torchrun process group, DDP, per-rank data.
* :mod:`~mrivol.training.precision`: ``amp_dtype`` on CUDA and CPU.
* :mod:`~mrivol.training.transfer_learning`: load, freeze and unfreeze an encoder.
* :mod:`~mrivol.training.handlers`: epoch statistics, progress line.
* :mod:`~mrivol.training.rank0`: progress, final weights and MLflow, on rank 0 only.
* :mod:`~mrivol.training.multitask_batch`: batches of the multi-task bundle.
* :mod:`~mrivol.training.gan_samples`: DCGAN minority augmentation.
"""

from __future__ import annotations

from mrivol.training.distributed import (
    destroy_distributed,
    distributed_device,
    init_distributed,
    is_distributed,
    on_rank0,
    rank,
    rank_partition,
    world_size,
    wrap_ddp,
)
from mrivol.training.gan_samples import (
    GanLossLogger,
    GanSampleWriter,
    minority_class,
    minority_items,
    real_images,
    save_sample_grid,
    write_synthetic_manifest,
)
from mrivol.training.handlers import EpochStatsHandler, ProgressHandler, scalar_loss
from mrivol.training.multitask_batch import (
    SegRegionOutput,
    class_output,
    prepare_multitask_batch,
    seg_region,
)
from mrivol.training.precision import AMP_DTYPES, AutocastInferer, cuda_amp, cuda_amp_kwargs
from mrivol.training.rank0 import rank0_handlers, validation_loggers
from mrivol.training.resume import (
    BestCheckpoint,
    BestMetricState,
    RandomStates,
    ResumeCheckpoint,
)
from mrivol.training.run import TrainResult, format_result, torchrun_command, train
from mrivol.training.transfer_learning import (
    FreezeEncoder,
    load_encoder_weights,
    set_encoder_trainable,
)
from mrivol.training.workflow import (
    PROFILES,
    available_networks,
    build_network,
    build_workflow,
    config_files,
    default_network,
    detect_profile,
    profile_synth,
)

__all__ = [
    "AMP_DTYPES",
    "AutocastInferer",
    "BestCheckpoint",
    "BestMetricState",
    "EpochStatsHandler",
    "FreezeEncoder",
    "GanLossLogger",
    "GanSampleWriter",
    "PROFILES",
    "ProgressHandler",
    "RandomStates",
    "SegRegionOutput",
    "ResumeCheckpoint",
    "TrainResult",
    "available_networks",
    "build_network",
    "build_workflow",
    "class_output",
    "config_files",
    "cuda_amp",
    "cuda_amp_kwargs",
    "default_network",
    "destroy_distributed",
    "detect_profile",
    "distributed_device",
    "format_result",
    "init_distributed",
    "is_distributed",
    "load_encoder_weights",
    "minority_class",
    "minority_items",
    "on_rank0",
    "prepare_multitask_batch",
    "profile_synth",
    "rank",
    "rank0_handlers",
    "rank_partition",
    "real_images",
    "save_sample_grid",
    "scalar_loss",
    "seg_region",
    "set_encoder_trainable",
    "torchrun_command",
    "train",
    "validation_loggers",
    "world_size",
    "wrap_ddp",
    "write_synthetic_manifest",
]

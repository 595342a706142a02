"""Training: the run, its workflow, resume, distribution, precision and handlers.

* :mod:`~mrivol.training.run`: ``mrivol train`` as a short sequence of named steps.
* :mod:`~mrivol.training.workflow`: which bundle config files, merged into a ConfigWorkflow.
* :mod:`~mrivol.training.resume`: exact resume checkpoints, best weights.
* :mod:`~mrivol.training.distributed`: torchrun process group, DDP, per-rank data.
* :mod:`~mrivol.training.seeding`: per-rank random streams (seed + rank), cuDNN flags.
* :mod:`~mrivol.training.loaders`: data loaders fitted to the CPUs, pinned or on the device.
* :mod:`~mrivol.training.cached_batch`: compact cached batches expanded on the device.
* :mod:`~mrivol.training.validation_schedule`: validation every k epochs, costly metrics every m.
* :mod:`~mrivol.training.precision`: ``amp_dtype`` on CUDA and CPU.
* :mod:`~mrivol.training.transfer_learning`: load, freeze and unfreeze an encoder.
* :mod:`~mrivol.training.handlers`: epoch statistics, progress line.
* :mod:`~mrivol.training.rank0`: progress, final weights and MLflow, on rank 0 only.
* :mod:`~mrivol.training.multitask_batch`: batches of the multi-task bundle.
* :mod:`~mrivol.training.gan_samples`: DCGAN minority augmentation.
"""

from __future__ import annotations

from mrivol.training.cached_batch import CachedBatch, label_map_to_regions
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
from mrivol.training.loaders import cpus_per_rank, data_loader, fit_workers
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
from mrivol.training.seeding import rank_seed, seed_process
from mrivol.training.transfer_learning import (
    FreezeEncoder,
    load_encoder_weights,
    set_encoder_trainable,
)
from mrivol.training.validation_schedule import ScheduledMetric, ScheduledValidation, is_due
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
    "CachedBatch",
    "EpochStatsHandler",
    "FreezeEncoder",
    "GanLossLogger",
    "GanSampleWriter",
    "PROFILES",
    "ProgressHandler",
    "RandomStates",
    "ResumeCheckpoint",
    "ScheduledMetric",
    "ScheduledValidation",
    "SegRegionOutput",
    "TrainResult",
    "available_networks",
    "build_network",
    "build_workflow",
    "class_output",
    "config_files",
    "cpus_per_rank",
    "cuda_amp",
    "cuda_amp_kwargs",
    "data_loader",
    "default_network",
    "destroy_distributed",
    "detect_profile",
    "distributed_device",
    "fit_workers",
    "format_result",
    "init_distributed",
    "is_distributed",
    "is_due",
    "label_map_to_regions",
    "load_encoder_weights",
    "minority_class",
    "minority_items",
    "on_rank0",
    "prepare_multitask_batch",
    "profile_synth",
    "rank",
    "rank0_handlers",
    "rank_partition",
    "rank_seed",
    "real_images",
    "save_sample_grid",
    "scalar_loss",
    "seed_process",
    "seg_region",
    "set_encoder_trainable",
    "torchrun_command",
    "train",
    "validation_loggers",
    "world_size",
    "wrap_ddp",
    "write_synthetic_manifest",
]

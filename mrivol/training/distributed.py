"""torch.distributed for bundles: process group, device, DDP wrapping, per-rank data.

``mrivol train --gpus N`` re-launches itself under ``torchrun`` (which sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous); the bundle's ``multi_gpu_train.yaml`` uses
these helpers. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "barrier",
    "broadcast",
    "destroy_distributed",
    "distributed_device",
    "init_distributed",
    "is_distributed",
    "on_rank0",
    "rank",
    "rank_partition",
    "world_size",
    "wrap_ddp",
]


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Global rank (0 outside a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (itself without a process group)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (nothing without a process group)."""
    if is_distributed():
        dist.barrier()


def distributed_device() -> torch.device:
    """``cuda:<LOCAL_RANK>`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def init_distributed(timeout_minutes: float | None = None) -> None:
    """Join the process group torchrun describes (idempotent); pin this rank's GPU.

    On the CPU, each rank gets its share of the cores for torch's intra-op threads.

    Args:
        timeout_minutes: how long a collective (a barrier while rank 0 works alone) may wait
            before the process group gives up (the config's ``dist_timeout_minutes``);
            ``None``: torch's default (10 minutes for NCCL, 30 for gloo).

    Raises:
        RuntimeError: not started by torchrun (no ``WORLD_SIZE`` / ``RANK`` in the environment).
    """
    if is_distributed():
        return
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        raise RuntimeError(
            "multi_gpu_train.yaml needs torchrun's environment (RANK, WORLD_SIZE): "
            "start it with `mrivol train --gpus N` or `torchrun --nproc_per_node N ...`"
        )
    if timeout_minutes is not None and timeout_minutes <= 0:
        raise ValueError(f"dist_timeout_minutes must be > 0, got {timeout_minutes}")
    timeout = {"timeout": timedelta(minutes=timeout_minutes)} if timeout_minutes else {}
    if torch.cuda.is_available():
        torch.cuda.set_device(distributed_device())
        dist.init_process_group(backend="nccl", **timeout)
    else:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
        dist.init_process_group(backend="gloo", **timeout)


def destroy_distributed() -> None:
    """Leave the process group if one is open."""
    if is_distributed():
        dist.destroy_process_group()


def wrap_ddp(
    network: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False
) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``network`` (already on ``device``).

    ``find_unused_parameters`` is needed by networks holding parameters that never receive a
    gradient (MONAI's UNETR); it costs an extra graph traversal per step, so it is opt-in.
    """
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        network, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def rank_partition(
    data: Sequence[Any], *, shuffle: bool = False, seed: int = 0, even_divisible: bool = True
) -> list[Any]:
    """This rank's share of ``data`` (MONAI ``partition_dataset``): each rank caches only it.

    With ``shuffle=False`` rank ``r`` gets ``data[r::world]``, the split a
    ``DistributedSampler(shuffle=False)`` makes. ``even_divisible`` pads the shorter shares (for
    training, so every rank runs the same number of steps); validation keeps it ``False`` so
    no case is counted twice.
    """
    from monai.data import partition_dataset

    if not is_distributed():
        return list(data)
    parts = partition_dataset(
        data=list(data),
        num_partitions=world_size(),
        shuffle=shuffle,
        seed=seed,
        even_divisible=even_divisible,
    )
    return parts[rank()]


def on_rank0(handlers: Sequence[Any]) -> list[Any]:
    """``handlers`` on rank 0, nothing elsewhere (logging, checkpoints, MLflow)."""
    return list(handlers) if rank() == 0 else []

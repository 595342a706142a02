"""Data loaders that feed a GPU without oversubscribing the CPUs.

:func:`data_loader` is what the bundles' ``train#dataloader`` and ``validate#dataloader``
build: MONAI's ``DataLoader`` (worker processes seeded from this rank's generator, see
:mod:`mrivol.training.seeding`) with pinned memory and persistent workers when asked, or, with
``on_device`` (the cache already on the GPU, random crops and augmentation run there),
MONAI's ``ThreadDataLoader`` without worker processes, as in MONAI's fast-training tutorial.

Worker processes and their threads are fitted to the CPUs of this rank (the CPUs this process
may run on, shared by the ranks of the node): at most ``cpus - 1`` workers, and
``threads x workers <= cpus`` (PyTorch's workers start with one thread; numpy and torch ops of
a worker use ``threads``).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

__all__ = ["cpus_per_rank", "data_loader", "fit_workers"]


def cpus_per_rank() -> int:
    """CPUs this process may use: its affinity set divided by the ranks on this node."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    local = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return max(cpus // local, 1)


def fit_workers(requested: int, cpus: int | None = None) -> tuple[int, int]:
    """``(workers, threads per worker)`` for ``requested`` workers on ``cpus`` CPUs.

    Examples:
        >>> fit_workers(8, cpus=32)
        (8, 3)
        >>> fit_workers(8, cpus=4)
        (3, 1)
        >>> fit_workers(0, cpus=2)
        (0, 1)
    """
    if requested < 0:
        raise ValueError(f"num_workers must be >= 0, got {requested}")
    cpus = cpus_per_rank() if cpus is None else cpus
    workers = min(requested, max(cpus - 1, 0))
    threads = max(cpus // (workers + 1), 1) if workers else 1
    return workers, threads


def _init_worker(worker_id: int, *, threads: int) -> None:
    """MONAI's worker seeding, then the worker's share of the CPUs."""
    from monai.data.utils import worker_init_fn

    torch.set_num_threads(threads)
    worker_init_fn(worker_id)


def data_loader(
    dataset: Any,
    *,
    batch_size: int = 1,
    shuffle: bool = False,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    on_device: bool = False,
    name: str = "train",
    **kwargs: Any,
) -> Any:
    """A MONAI ``DataLoader`` (or ``ThreadDataLoader`` for on-device data) fitted to this rank.

    Args:
        dataset: the dataset.
        batch_size: cases per batch.
        shuffle: reshuffle every epoch.
        num_workers: worker processes asked for (fitted by :func:`fit_workers`).
        pin_memory: page-locked host batches, copied to the GPU asynchronously (the engines'
            ``non_blocking``); ignored without CUDA.
        persistent_workers: keep the workers (and their copy of the transforms) between
            epochs.
        on_device: the dataset yields tensors already on the GPU (``ToDeviced`` in the cached
            chain): no worker processes, MONAI's ``ThreadDataLoader``.
        name: for the message that says what was chosen.
        **kwargs: further ``DataLoader`` arguments.

    Returns:
        The loader.
    """
    from monai.data import DataLoader, ThreadDataLoader

    if on_device:
        print(f"{name} loader: data and augmentation on the device (ThreadDataLoader)", flush=True)
        return ThreadDataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0, **kwargs
        )
    workers, threads = fit_workers(num_workers)
    pin = bool(pin_memory) and torch.cuda.is_available()
    if workers != num_workers:
        print(
            f"{name} loader: {workers} worker processes x {threads} threads instead of "
            f"{num_workers} ({cpus_per_rank()} CPUs for this process)",
            flush=True,
        )
    if workers:
        kwargs |= {
            "worker_init_fn": functools.partial(_init_worker, threads=threads),
            "persistent_workers": bool(persistent_workers),
        }
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=pin,
        **kwargs,
    )

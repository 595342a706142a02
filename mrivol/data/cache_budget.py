"""A bounded cache: MONAI's ``CacheDataset`` filled by several threads, never beyond a budget.

A BraTS-size training set does not fit in memory on every machine (1,251 cases x 30-250 MB),
and a cache that outgrows the RAM ends in an unexplained SIGKILL. :class:`BudgetedCacheDataset`
estimates the cache from its first cases, says so when the estimate exceeds the budget, and
fills the cache in order only while it stays within the budget (``cache_budget_mb``, default
``cache_budget_fraction`` of the memory available to this process, cgroup limits included,
shared between the ranks of a node). The cases that do not fit are preprocessed every epoch
(``overflow="rate"``, as a lower ``cache_rate``) or once into MONAI's ``PersistentDataset`` on
disk (``overflow="disk"``) and read from there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import CacheDataset, PersistentDataset
from monai.data.utils import pickle_hashing
from tqdm import tqdm

from mrivol.paths import cache_dir as cache_root

__all__ = [
    "OVERFLOW_MODES",
    "BudgetedCacheDataset",
    "available_memory_bytes",
    "cache_budget_bytes",
    "item_nbytes",
    "transform_hash",
]

OVERFLOW_MODES = ("rate", "disk")
PROBE_CASES = 2  # cases the size estimate is made from
MB = 1024**2


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory_bytes() -> int:
    """Memory this process can still allocate: ``MemAvailable``, capped by a cgroup limit.

    In a container ``/proc/meminfo`` shows the host; the cgroup's limit minus its usage is what
    the kernel's OOM killer enforces (cgroup v2 ``memory.max``, v1 ``memory.limit_in_bytes``).
    """
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            available = min(available, max(limit - usage, 0))
    return int(available)


def cache_budget_bytes(budget_mb: float | None = None, fraction: float = 0.5) -> int:
    """The cache budget of this process.

    Args:
        budget_mb: an explicit budget in MiB (``cache_budget_mb``); ``None``: ``fraction`` of
            :func:`available_memory_bytes`, divided between the processes of this node
            (``LOCAL_WORLD_SIZE``, set by torchrun), each of which caches its own share.
        fraction: share of the available memory (``cache_budget_fraction``), in (0, 1].

    Raises:
        ValueError: a negative budget or a fraction outside (0, 1].
    """
    if budget_mb is not None:
        if budget_mb < 0:
            raise ValueError(f"cache_budget_mb must be >= 0 (or null), got {budget_mb}")
        return int(budget_mb * MB)
    if not 0 < fraction <= 1:
        raise ValueError(f"cache_budget_fraction must be in (0, 1], got {fraction}")
    local = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return int(available_memory_bytes() * fraction / local)


def item_nbytes(item: Any) -> int:
    """Bytes held by the tensors and arrays of a (nested) data item."""
    if isinstance(item, torch.Tensor):
        return item.element_size() * item.nelement()
    if isinstance(item, np.ndarray):
        return int(item.nbytes)
    if isinstance(item, Mapping):
        return sum(item_nbytes(v) for v in item.values())
    if isinstance(item, (list, tuple)):
        return sum(item_nbytes(v) for v in item)
    return 0


def transform_hash(transforms: Sequence[Any]) -> bytes:
    """A hash of the cached transforms and their settings (the disk cache's key).

    MONAI's ``pickle_hashing`` of the transform objects; transforms that cannot be pickled fall
    back to their class names and settings as text.
    """
    try:
        return pickle_hashing(list(transforms))
    except Exception:  # noqa: BLE001 - any pickling failure: fall back to a text key
        text = repr([(type(t).__name__, sorted(map(repr, vars(t).items()))) for t in transforms])
        return hashlib.sha256(text.encode()).hexdigest().encode()


def _gb(n: float) -> str:
    return f"{n / 1024**3:.2f} GB" if n >= 1024**3 else f"{n / MB:.1f} MB"


@contextlib.contextmanager
def fill_threads(workers: int) -> Iterator[int]:
    """Split torch's intra-op threads between ``workers`` fill threads while the cache fills.

    Each fill thread runs its transforms' torch kernels with ``threads // workers`` intra-op
    threads (at least one), so ``workers`` threads never oversubscribe the cores torch was
    given. Measured on 2 cores (``benchmarks/data_pipeline.py``, full-size cases, three runs):
    two fill threads 1.5-1.9x as fast as one fill thread on one core, and 1.4-1.5x one fill
    thread whose kernels use both cores. The previous setting is restored afterwards. Yields
    the intra-op threads per fill thread.
    """
    before = torch.get_num_threads()
    per_worker = max(1, before // max(1, workers))
    torch.set_num_threads(per_worker)
    try:
        yield per_worker
    finally:
        torch.set_num_threads(before)


class BudgetedCacheDataset(CacheDataset):
    """``CacheDataset`` with a thread pool fill that stops at a memory budget.

    Args:
        data: the datalist.
        transform: a ``Compose``; its deterministic head (up to the first random transform)
            is cached.
        cache_rate: share of the cases to cache at most.
        num_workers: threads that fill the cache. Loading NIfTI files with several threads needs
            a thread-safe reader (:class:`mrivol.transforms.ThreadSafeNibabelReader`).
        budget_mb: memory budget in MiB; ``None``: ``budget_fraction`` of the available memory.
        budget_fraction: see :func:`cache_budget_bytes`.
        overflow: what happens to the cases beyond the budget: ``"rate"`` (preprocessed every
            epoch) or ``"disk"`` (preprocessed once into ``disk_cache_dir``, then read).
        disk_cache_dir: folder of the disk cache; default ``<MRIVOL_CACHE>/datasets/<hash of
            the cached transforms>``.
        name: what the messages call this dataset (``train``, ``validate``).
        progress: show a progress bar while filling.
        copy_cache: deep-copy a cached case before the random transforms (MONAI's default);
            ``False`` when those never write into their input (cropping first, as brats_seg).

    Raises:
        ValueError: an unknown ``overflow`` mode or a bad budget.

    Examples:
        >>> ds = BudgetedCacheDataset(items, chain, budget_mb=4096)  # doctest: +SKIP
    """

    def __init__(
        self,
        data: Sequence[Any],
        transform: Callable,
        *,
        cache_rate: float = 1.0,
        num_workers: int = 2,
        budget_mb: float | None = None,
        budget_fraction: float = 0.5,
        overflow: str = "rate",
        disk_cache_dir: str | os.PathLike | None = None,
        name: str = "train",
        progress: bool = True,
        copy_cache: bool = True,
    ) -> None:
        if overflow not in OVERFLOW_MODES:
            raise ValueError(
                f"cache_overflow must be one of {', '.join(OVERFLOW_MODES)}; got {overflow!r}"
            )
        self.budget_bytes = cache_budget_bytes(budget_mb, budget_fraction)
        self.overflow = overflow
        self.disk_cache_dir = disk_cache_dir
        self.name = name
        self.cached_bytes = 0
        self.estimated_bytes = 0
        self.disk: PersistentDataset | None = None
        self.message = ""
        super().__init__(
            data,
            transform,
            cache_rate=cache_rate,
            num_workers=num_workers,
            progress=progress,
            copy_cache=copy_cache,
        )

    def _fill_cache(self, indices: Sequence[int] | None = None) -> list:
        """Fill in order with ``num_workers`` threads; stop before the budget is exceeded."""
        indices = list(range(self.cache_num) if indices is None else indices)
        if not indices:
            return []
        cache: list = []
        wanted = len(indices)
        with fill_threads(self.num_workers), ThreadPool(self.num_workers) as pool:
            results = pool.imap(self._load_cache_item, indices)
            with tqdm(
                total=wanted, desc=f"caching {self.name}", disable=not self.progress, unit="case"
            ) as bar:
                for item in results:
                    size = item_nbytes(item)
                    if self.cached_bytes + size > self.budget_bytes:
                        pool.terminate()  # the cases in flight are dropped, not cached
                        break
                    cache.append(item)
                    self.cached_bytes += size
                    bar.update()
                    if len(cache) == min(PROBE_CASES, wanted):
                        self._announce_estimate(len(cache), wanted)
        self.cache_num = len(cache)
        if self.cache_num < wanted:
            self._overflow(wanted)
        return cache

    def _announce_estimate(self, probed: int, wanted: int) -> None:
        self.estimated_bytes = int(self.cached_bytes / probed * wanted)
        if self.estimated_bytes > self.budget_bytes:
            fits = int(self.budget_bytes / max(self.cached_bytes / probed, 1))
            print(
                f"{self.name} cache: {wanted} cases x {_gb(self.cached_bytes / probed)} (measured "
                f"on the first {probed}) = {_gb(self.estimated_bytes)} exceeds the budget "
                f"{_gb(self.budget_bytes)}; about {fits} cases fit in memory",
                file=sys.stderr,
                flush=True,
            )

    def _overflow(self, wanted: int) -> None:
        rest = wanted - self.cache_num
        head = (
            f"{self.name} cache: {self.cache_num} of {wanted} cases in memory "
            f"({_gb(self.cached_bytes)} of the {_gb(self.budget_bytes)} budget, "
            f"cache_rate {self.cache_num / max(len(self.data), 1):.2f}); "
        )
        if self.overflow == "disk":
            folder = Path(self.disk_cache_dir or self._default_disk_dir())
            self.disk = PersistentDataset(
                self.data,
                self.transform,
                cache_dir=folder,
                hash_transform=transform_hash,
                track_meta=True,
                weights_only=False,  # the project's own cache files (MetaTensor metadata)
            )
            tail = f"the other {rest} are preprocessed once into the disk cache {folder}"
        else:
            tail = (
                f"the other {rest} are preprocessed every epoch. Raise cache_budget_mb "
                "(or cache_budget_fraction), or set cache_overflow: disk"
            )
        self.message = head + tail
        print(self.message, file=sys.stderr, flush=True)

    def _default_disk_dir(self) -> Path:
        return cache_root() / "datasets" / transform_hash(self._cached_head()).decode()[:16]

    def _cached_head(self) -> list:
        from monai.transforms import RandomizableTrait, Transform

        head = []
        for t in self.transform.flatten().transforms:
            if isinstance(t, RandomizableTrait) or not isinstance(t, Transform):
                break
            head.append(t)
        return head

    def _transform(self, index: int) -> Any:
        if self.disk is not None and index % len(self) >= self.cache_num:
            return self.disk[index]
        return super()._transform(index)

"""Per-process random streams: seed + rank, then cuDNN's autotuner unless determinism is asked.

``set_determinism(seed)`` with the same seed on every DDP rank gives every rank, and through
MONAI's ``DataLoader`` (which seeds its workers and random transforms from the process's torch
generator) every rank's workers, the same flips, intensity factors and crop centres: a global
batch of 16 patches then has the augmentation diversity of 2. :func:`seed_process` seeds rank
``r`` with ``seed + r``, reproducibly; the network is still identical on every rank (DDP
broadcasts rank 0's weights when it wraps the model) and rank 0 draws what a single process
with the same seed draws. The resume checkpoint keeps every rank's generators
(:class:`mrivol.training.RandomStates`, one ``resume.rng<rank>.pt`` per rank).
"""

from __future__ import annotations

import torch
from monai.utils import set_determinism

from mrivol.training.distributed import rank

__all__ = ["rank_seed", "seed_process"]


def rank_seed(seed: int) -> int:
    """The seed of this process: ``seed + rank`` (``seed`` outside a process group)."""
    return int(seed) + rank()


def seed_process(seed: int, *, deterministic: bool = True) -> int:
    """Seed python, numpy, torch and MONAI with :func:`rank_seed`; set cuDNN's flags.

    Args:
        seed: the run's ``seed``.
        deterministic: keep cuDNN deterministic with its autotuner off (MONAI's
            ``set_determinism``); ``False`` (the gpu profile) turns ``cudnn.benchmark`` on after
            seeding, so fixed-size patches get the fastest convolution algorithms, at the cost of
            bit-exact repeatability on the GPU.

    Returns:
        The seed this process used.

    Examples:
        >>> seed_process(0)
        0
    """
    own = rank_seed(seed)
    set_determinism(seed=own)
    if not deterministic:
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
    return own

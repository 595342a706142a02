"""Compact crop-centre indices: at most ``max_samples`` per set, as 32-bit integers.

``FgBgToIndicesd`` stores every tumour and every background voxel index of a case as int64:
on a 1 mm skull-stripped BraTS case that is ~1.5 M background indices, 12 MB of the cache.
Crop centres drawn from an evenly spaced subset are as good (nnU-Net v2 keeps 10,000 voxel
locations per class; MONAI's ``map_classes_to_indices(max_samples_per_class=...)`` thins its
class indices with the same ``linspace`` rule).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

__all__ = ["CapIndices", "CapIndicesd"]


class CapIndices(Transform):
    """Keep at most ``max_samples`` evenly spaced entries of a flat index array, as int32.

    Args:
        max_samples: the cap (``None``: keep all, only cast).

    Raises:
        ValueError: ``max_samples < 1``, or an index that does not fit in 32 bits.

    Examples:
        >>> CapIndices(max_samples=3)(np.arange(10)).tolist()
        [0, 4, 9]
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(self, *, max_samples: int | None = 20_000) -> None:
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 (or None), got {max_samples}")
        self.max_samples = max_samples

    def __call__(self, indices: np.ndarray | torch.Tensor) -> np.ndarray:
        flat = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
        flat = flat.reshape(-1)
        if flat.size and int(flat.max()) > np.iinfo(np.int32).max:
            raise ValueError(f"voxel index {int(flat.max())} does not fit in int32")
        if self.max_samples is not None and flat.size > self.max_samples:
            flat = flat[np.round(np.linspace(0, flat.size - 1, self.max_samples)).astype(int)]
        return flat.astype(np.int32)


class CapIndicesd(MapTransform):
    """Dictionary wrapper of :class:`CapIndices` (``keys``: the ``FgBgToIndicesd`` outputs)."""

    backend = CapIndices.backend

    def __init__(
        self,
        keys: KeysCollection,
        *,
        max_samples: int | None = 20_000,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.capper = CapIndices(max_samples=max_samples)

    def __call__(self, data: Mapping[Hashable, np.ndarray]) -> dict[Hashable, np.ndarray]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.capper(d[key])
        return d

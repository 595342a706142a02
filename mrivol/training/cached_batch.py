"""Batches from a compact cache: float16 images and uint8 label maps, expanded on the device.

The bundle caches each case small (image in ``cache_dtype``, the BraTS label map as uint8, a
quarter of the float32 three-region target); :class:`CachedBatch` is the engines'
``prepare_batch``: it copies the batch to the device (``non_blocking`` with pinned memory),
then casts the image to float32 and turns the label map into the TC / WT / ET region channels
there, so both the cache and the host-to-device copy stay small.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.engines.utils import PrepareBatch

__all__ = ["CachedBatch", "label_map_to_regions"]


def label_map_to_regions(label: torch.Tensor, *, et_label: int = 4) -> torch.Tensor:
    """BraTS label maps ``(B, 1, H, W, D)`` -> boolean TC, WT, ET channels ``(B, 3, H, W, D)``.

    The rule of MONAI's ``ConvertToMultiChannelBasedOnBratsClasses`` (TC = NCR + ET, WT = TC +
    ED, ET), on a whole batch at once (MONAI's transform takes one case).

    Examples:
        >>> labels = torch.tensor([0, 1, 2, 4]).view(1, 1, 4, 1, 1)
        >>> label_map_to_regions(labels)[0, :, :, 0, 0].int()
        tensor([[0, 1, 0, 1],
                [0, 1, 1, 1],
                [0, 0, 0, 1]], dtype=torch.int32)
    """
    if label.ndim < 3 or label.shape[1] != 1:
        raise ValueError(f"expected label maps (B, 1, ...), got shape {tuple(label.shape)}")
    et = label == et_label
    tc = (label == 1) | et
    return torch.cat([tc, tc | (label == 2), et], dim=1)


class CachedBatch(PrepareBatch):
    """``prepare_batch`` for compactly cached BraTS batches (see the module docstring).

    A single-channel label is a BraTS label map (uint8 from the cache, or float after a spatial
    augmentation with nearest interpolation); a multi-channel one is only moved and cast.

    Args:
        et_label: the enhancing-tumour label (4 for BraTS 2018-2022, 3 for 2023+).
        dtype: what the network and the loss get (float32).
        image_key: batch key of the image.
        label_key: batch key of the label (absent at inference).
    """

    def __init__(
        self,
        *,
        et_label: int = 4,
        dtype: torch.dtype = torch.float32,
        image_key: str = "image",
        label_key: str = "label",
    ) -> None:
        self.et_label = et_label
        self.dtype = dtype
        self.image_key, self.label_key = image_key, label_key

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        image = batchdata[self.image_key].to(device=device, non_blocking=non_blocking, **kwargs)
        label = batchdata.get(self.label_key)
        if label is not None:
            label = label.to(device=device, non_blocking=non_blocking, **kwargs)
            if label.shape[1] == 1:  # a label map (spatial augmentation may make it float)
                label = label_map_to_regions(label, et_label=self.et_label)
            label = label.to(self.dtype)
        return image.to(self.dtype), label

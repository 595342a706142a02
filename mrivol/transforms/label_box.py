"""A label map cached as the box around its labelled voxels, restored to full size per sample.

A BraTS label map is zero outside the tumour: on a 1 mm brain-cropped case the uint8 map takes
4-5 MB of the cache, of which the tumour's bounding box is a few hundred KB. :class:`LabelBoxd`
keeps only that box (and where it sits) in the cache; :class:`RestoreLabelBoxd`, the first
transform after the cache, pastes it into zeros of the full size on the box's device, which
costs ~1 ms per sample on the CPU. The crop-centre indices (``FgBgToIndicesd``) are computed on
the full map before, so crops are drawn exactly as without the box.

MONAI has no such pair: its croppers change the image grid, this changes only how the label is
stored. :class:`RestoreLabelBoxd` carries MONAI's ``RandomizableTrait`` although it draws
nothing: ``CacheDataset`` caches up to the first transform with that trait, and the point is
that the cache keeps the compact form.

Examples:
    >>> import torch
    >>> label = torch.zeros(1, 8, 8, 8, dtype=torch.uint8)
    >>> label[0, 2:4, 3:6, 5] = 2
    >>> cached = LabelBoxd("label")({"label": label})
    >>> tuple(cached["label"].shape), cached["label_box"].tolist()
    ((1, 2, 3, 1), [[8, 8, 8], [2, 3, 5]])
    >>> bool(torch.equal(RestoreLabelBoxd("label")(cached)["label"], label))
    True
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTrait

__all__ = ["LabelBoxd", "RestoreLabelBoxd"]


class _BoxKeys(MapTransform):
    """The label keys and the suffix of their box entries (``<key><box_postfix>``)."""

    def __init__(
        self, keys: KeysCollection, box_postfix: str = "_box", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.box_postfix = box_postfix


class LabelBoxd(_BoxKeys):
    """Replace each label map (C, X, Y, Z) by the box around its nonzero voxels (a copy).

    ``<key><box_postfix>`` gets a (2, 3) int64 tensor: the full spatial shape and the box's
    start. A map without labelled voxels keeps an empty box.

    Args:
        keys: the label keys.
        box_postfix: suffix of the key that holds the shape and start.
        allow_missing_keys: skip absent keys.
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = torch.as_tensor(d[key]) if not isinstance(d[key], torch.Tensor) else d[key]
            spatial = tuple(label.shape[1:])
            found = torch.nonzero(label.reshape(label.shape[0], -1).any(0).reshape(spatial))
            if found.numel():
                start, stop = found.min(0).values.tolist(), (found.max(0).values + 1).tolist()
            else:
                start, stop = [0] * len(spatial), [0] * len(spatial)
            box = (slice(None), *(slice(a, b) for a, b in zip(start, stop, strict=True)))
            d[key] = label[box].clone()  # a copy: a view would keep the whole map alive
            d[f"{key}{self.box_postfix}"] = torch.tensor([list(spatial), start], dtype=torch.int64)
        return d


class RestoreLabelBoxd(_BoxKeys, RandomizableTrait):
    """Paste each boxed label map of :class:`LabelBoxd` into zeros of its full size.

    The result is a new tensor on the box's device with its dtype (and, for a ``MetaTensor``,
    its metadata); the cached box is not changed. The ``<key><box_postfix>`` entry is removed.

    Args:
        keys: the label keys.
        box_postfix: as given to :class:`LabelBoxd`.
        allow_missing_keys: skip absent keys.

    Raises:
        KeyError: a label without its box entry (not made by :class:`LabelBoxd`).
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            box_key = f"{key}{self.box_postfix}"
            if box_key not in d:
                raise KeyError(f"{key!r} has no {box_key!r}: it was not boxed by LabelBoxd")
            spatial, start = d.pop(box_key).tolist()
            crop = d[key]
            full = crop.new_zeros((crop.shape[0], *spatial))
            full[
                (
                    slice(None),
                    *(slice(a, a + n) for a, n in zip(start, crop.shape[1:], strict=True)),
                )
            ] = crop
            d[key] = full
        return d

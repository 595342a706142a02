"""Label a case with its whole-tumour volume bucket (the multi-task bundle's class target)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.transforms import MapTransform

from mrivol.data.tumour_classes import tumour_class, tumour_volume_ml

__all__ = ["TumourVolumeClassd"]


class TumourVolumeClassd(MapTransform):
    """Add ``class_key`` = the whole-tumour volume bucket of the label map ``label_key``.

    Apply it before any crop (the class is a case property). The label may be a raw BraTS map
    (C=1, values 0/1/2/4) or the three region channels (TC, WT, ET; the WT channel is used).

    Args:
        edges: bucket edges in mL (:func:`tumour_volume_edges`).
        label_key: the label map (a ``MetaTensor`` whose ``pixdim`` gives the voxel size).
        class_key: where the class index goes.
        wt_channel: the whole-tumour channel of a multi-channel label.
    """

    def __init__(
        self,
        *,
        edges: Sequence[float],
        label_key: str = "label",
        class_key: str = "class",
        wt_channel: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(label_key, allow_missing_keys)
        if list(edges) != sorted(edges):
            raise ValueError(f"TumourVolumeClassd: edges must increase, got {list(edges)}.")
        self.edges, self.label_key, self.class_key = list(edges), label_key, class_key
        self.wt_channel = wt_channel

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.label_key not in d:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"TumourVolumeClassd: no {self.label_key!r} in the item.")
        label = d[self.label_key]
        mask = label[self.wt_channel] if label.shape[0] > 1 else label[0]
        spacing = getattr(label, "pixdim", None)
        spacing = [1.0, 1.0, 1.0] if spacing is None else [float(s) for s in spacing[:3]]
        d[self.class_key] = tumour_class(tumour_volume_ml(mask, spacing), self.edges)
        return d

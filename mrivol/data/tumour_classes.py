"""A case-level tumour class derived from a BraTS label map: whole-tumour volume bucket.

The multi-task bundle (``bundles/brats_multitask``) needs a classification target on data
that has only voxel labels (the phantoms, or BraTS without grades). The class is the bucket
of the whole-tumour volume (labels 1, 2 and 4, in mL): with ``K`` classes the bucket edges are
the ``1/K .. (K-1)/K`` quantiles of the TRAINING split's volumes (terciles for three classes),
so validation cases never shape the edges. :class:`TumourVolumeClassd` then labels any case.

Examples:
    >>> edges = tumour_volume_edges(train_datalist, num_classes=3)  # doctest: +SKIP
    >>> TumourVolumeClassd(edges=edges)({"label": seg})["class"]  # doctest: +SKIP
    1
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform

__all__ = ["TumourVolumeClassd", "tumour_class", "tumour_volume_edges", "tumour_volume_ml"]


def tumour_volume_ml(label: np.ndarray | torch.Tensor, spacing: Sequence[float]) -> float:
    """Whole-tumour volume in mL of a label map (any voxel > 0), ``spacing`` in mm."""
    voxels = int((torch.as_tensor(label) > 0).sum())
    return voxels * float(np.prod([float(s) for s in spacing])) / 1000.0


def tumour_class(volume_ml: float, edges: Sequence[float]) -> int:
    """The bucket of ``volume_ml``: 0 below ``edges[0]``, ``len(edges)`` above the last edge."""
    return int(np.searchsorted(np.asarray(edges, dtype=float), volume_ml, side="right"))


def tumour_volume_edges(datalist: Sequence[Mapping[str, Any]], *, num_classes: int) -> list[float]:
    """Bucket edges (mL) from the quantiles of the training cases' whole-tumour volumes.

    Args:
        datalist: training items with a ``label`` path (BraTS label map, read with nibabel).
        num_classes: number of buckets (3: terciles).

    Returns:
        ``num_classes - 1`` increasing edges in mL.

    Raises:
        ValueError: ``num_classes < 2`` or fewer training cases than classes.
    """
    import nibabel as nib

    if num_classes < 2 or len(datalist) < num_classes:
        raise ValueError(
            f"tumour_volume_edges: need num_classes >= 2 and at least that many training cases, "
            f"got num_classes={num_classes} and {len(datalist)} case(s)."
        )
    volumes = []
    for item in datalist:
        img = nib.load(str(item["label"]))
        data = np.asanyarray(img.dataobj)
        volumes.append(tumour_volume_ml(data, img.header.get_zooms()[:3]))
    qs = np.linspace(0, 1, num_classes + 1)[1:-1]
    return [float(q) for q in np.quantile(volumes, qs)]


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

"""A case-level tumour class derived from a BraTS label map: whole-tumour volume bucket.

The multi-task bundle (``bundles/brats_multitask``) needs a classification target on data
that has only voxel labels (the phantoms, or BraTS without grades). The class is the bucket
of the whole-tumour volume (labels 1, 2 and 4, in mL): with ``K`` classes the bucket edges are
the ``1/K .. (K-1)/K`` quantiles of the TRAINING split's volumes (terciles for three classes),
so validation cases never shape the edges. :class:`mrivol.transforms.TumourVolumeClassd` then
labels any case.

Examples:
    >>> edges = tumour_volume_edges(train_datalist, num_classes=3)  # doctest: +SKIP
    >>> TumourVolumeClassd(edges=edges)({"label": seg})["class"]  # doctest: +SKIP
    1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["tumour_class", "tumour_volume_edges", "tumour_volume_ml"]


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

"""The multi-task class target: whole-tumour volume buckets, edges from the training split."""

from __future__ import annotations

import pytest

from mrivol.data import tumour_class, tumour_volume_edges


@pytest.mark.parametrize(
    ("volume", "edges", "expected"),
    [(0.5, [1.0, 2.0], 0), (1.5, [1.0, 2.0], 1), (9.0, [1.0, 2.0], 2), (1.0, [1.0, 2.0], 1)],
    ids=["small", "medium", "large", "on-edge-goes-up"],
)
def test_tumour_class_buckets(volume, edges, expected):
    assert tumour_class(volume, edges) == expected


def test_edges_are_training_terciles(tiny_brats_manifest):
    from mrivol.data import to_datalist

    train_items = to_datalist(tiny_brats_manifest, fold=0, split="train")
    edges = tumour_volume_edges(train_items, num_classes=3)
    assert len(edges) == 2 and edges[0] <= edges[1] and edges[0] > 0
    with pytest.raises(ValueError, match="at least that many"):
        tumour_volume_edges(train_items[:2], num_classes=3)

"""The label map cached as its tumour box and restored to full size per sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, RandCropByPosNegLabeld

from mrivol.data import BudgetedCacheDataset
from mrivol.data.cache_budget import item_nbytes
from mrivol.transforms import LabelBoxd, RestoreLabelBoxd


def _label(seed: int, shape=(20, 24, 16)) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    label = np.zeros((1, *shape), dtype=np.uint8)
    x, y, z = rng.integers(2, 8, size=3)
    label[0, x : x + 6, y : y + 5, z : z + 4] = rng.choice([1, 2, 4], size=(6, 5, 4))
    return torch.from_numpy(label)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_box_is_the_tight_bounding_box_and_restores_the_map_exactly(seed):
    label = _label(seed)
    boxed = LabelBoxd("label")({"label": label})
    nz = torch.nonzero(label[0])
    assert tuple(boxed["label"].shape[1:]) == tuple(
        (nz.max(0).values - nz.min(0).values + 1).tolist()
    )
    assert boxed["label_box"].tolist() == [list(label.shape[1:]), nz.min(0).values.tolist()]
    assert boxed["label"].untyped_storage().nbytes() < label.untyped_storage().nbytes()  # a copy
    restored = RestoreLabelBoxd("label")(boxed)
    assert torch.equal(restored["label"], label) and restored["label"].dtype == torch.uint8
    assert "label_box" not in restored and "label_box" in boxed  # the cached dict is not changed


def test_an_empty_map_restores_to_zeros_and_metadata_is_kept():
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))
    label = MetaTensor(torch.zeros(1, 6, 7, 8, dtype=torch.uint8), affine=affine)
    boxed = LabelBoxd("label")({"label": label})
    assert boxed["label"].numel() == 0
    restored = RestoreLabelBoxd("label")(boxed)["label"]
    assert isinstance(restored, MetaTensor) and tuple(restored.shape) == (1, 6, 7, 8)
    assert not restored.any() and torch.allclose(restored.affine, affine.double())


def test_a_label_that_was_not_boxed_is_refused():
    with pytest.raises(KeyError, match="not boxed"):
        RestoreLabelBoxd("label")({"label": _label(0)})


def test_the_cache_holds_the_box_and_the_crops_see_the_full_map():
    items = [{"image": torch.rand(1, 20, 24, 16), "label": _label(s)} for s in range(3)]
    crop = RandCropByPosNegLabeld(["image", "label"], "label", spatial_size=(8, 8, 8), pos=1,
                                  neg=0, num_samples=2)  # fmt: skip
    chain = Compose([LabelBoxd("label"), RestoreLabelBoxd("label"), crop])
    dataset = BudgetedCacheDataset(items, chain, num_workers=1, budget_mb=64, progress=False,
                                   copy_cache=False)  # fmt: skip
    images = sum(item_nbytes({"image": it["image"]}) for it in items)
    boxes = 3 * (6 * 5 * 4 + 2 * 3 * 8)  # each tumour box (uint8) and its shape / start (int64)
    assert dataset.cached_bytes == images + boxes
    for i in range(len(items)):
        cached = dataset._cache[i]  # noqa: SLF001
        assert cached["label"].shape[1:] == (6, 5, 4)
        for sample in dataset[i]:  # pos=1: every patch centred on the tumour, labels present
            assert sample["label"].shape == (1, 8, 8, 8) and sample["label"].any()
        assert cached["label"].shape[1:] == (6, 5, 4)  # serving did not change the cache

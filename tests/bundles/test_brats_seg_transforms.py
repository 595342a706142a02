"""The brats_seg transform chain on a tiny case: what the network is fed, checked as invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import Compose

from mrivol.data import to_datalist
from mrivol.training import CachedBatch, config_files


@pytest.fixture(scope="module")
def parser(tiny_brats_manifest) -> ConfigParser:
    p = ConfigParser()
    p.read_config([str(f) for f in config_files("brats_seg", "train", profile="cpu", net="unet")])
    p.update(
        {"manifest": str(tiny_brats_manifest), "spacing": [2.0, 2.0, 2.0], "roi_size": [32] * 3}
    )
    return p


@pytest.fixture(scope="module")
def item(tiny_brats_manifest) -> dict:
    return to_datalist(tiny_brats_manifest, fold=0, split="train")[0]


def test_preprocessing_stacks_resamples_and_normalises(parser, item):
    out = Compose(parser.get_parsed_content("preprocessing_transforms"))(item)
    image, label = out["image"], out["label"]
    assert image.shape[0] == 4 and label.shape[0] == 1  # t1, t1ce, t2, flair; one label map
    assert image.shape[1:] == label.shape[1:]
    np.testing.assert_allclose(image.pixdim.numpy(), [2.0, 2.0, 2.0], atol=1e-5)  # resampled
    torch.testing.assert_close(image.affine, label.affine)  # one grid for image and label
    assert image.dtype == torch.float16 and label.dtype == torch.uint8  # the compact cache
    assert set(torch.unique(label).tolist()) <= {0, 1, 2, 4}
    regions = CachedBatch(et_label=4)({"image": image[None], "label": label[None]})[1][0]
    assert regions.dtype == torch.float32 and set(torch.unique(regions).tolist()) <= {0.0, 1.0}
    tc, wt, et = regions
    assert bool((et <= tc).all() and (tc <= wt).all())  # nested BraTS regions
    for channel in image.float():  # z-scored inside the head, zero outside (float16 rounding)
        inside = channel[channel != 0]
        assert abs(float(inside.mean())) < 5e-3 and abs(float(inside.std()) - 1) < 1e-2


@pytest.mark.parametrize("recipe", ["default", "nnunet"])
def test_training_patches_have_roi_size_and_tumour_centred_ones(parser, item, recipe):
    parser["augmentation"] = recipe
    chain = Compose(
        parser.get_parsed_content("preprocessing_transforms")
        + parser.get_parsed_content("train_augmentation", instantiate=True)
    )
    chain.set_random_state(seed=0)
    patches = [p for _ in range(4) for p in chain(item)]  # 2 patches per call
    parser["augmentation"] = "default"
    assert all(p["image"].shape == (4, 32, 32, 32) for p in patches)
    assert all(p["image"].dtype == torch.float32 for p in patches)
    assert all(p["label"].shape == (1, 32, 32, 32) for p in patches)
    assert all(set(torch.unique(p["label"]).tolist()) <= {0, 1, 2, 4} for p in patches)
    assert sum(bool(p["label"].any()) for p in patches) >= len(patches) // 2  # pos_fraction 0.5


def test_same_seed_same_patches(parser, item):
    def draw(seed: int) -> torch.Tensor:
        chain = Compose(
            parser.get_parsed_content("preprocessing_transforms")
            + parser.get_parsed_content("train_augmentation")
        )
        chain.set_random_state(seed=seed)
        return torch.stack([p["image"] for p in chain(item)])

    torch.testing.assert_close(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def test_every_nnunet_spatial_transform_moves_image_and_label_together(parser):
    """Rotation, scaling and mirroring of the nnunet recipe, each forced on, on a block phantom
    whose image is its label: the transformed image still outlines the transformed label."""
    label = torch.zeros(1, 32, 32, 32, dtype=torch.uint8)
    label[0, 5:25, 6:27, 8:25] = 2  # off-centre on every axis: every flip moves it
    label[0, 9:16, 12:21, 12:21] = 4
    image = (label > 0).float().repeat(4, 1, 1, 1) * 5.0
    recipe = parser.get_parsed_content("augmentation_recipes#nnunet", instantiate=True)
    spatial = [t for t in recipe if {"image", "label"} <= set(getattr(t, "keys", ()))]
    assert {type(t).__name__ for t in spatial} == {"RandRotated", "RandZoomd", "RandFlipd"}
    for t in spatial:
        t.prob = 1.0
        t.set_random_state(seed=3)
        changed = False
        for _ in range(3):
            out = t({"image": image.clone(), "label": label.clone()})
            outlined, labelled = out["image"][0] > 2.5, out["label"][0] > 0
            dice = 2 * (outlined & labelled).sum() / (outlined.sum() + labelled.sum())
            assert float(dice) > 0.9, type(t).__name__
            changed |= not torch.equal(out["label"].to(torch.uint8), label)
        assert changed, f"{type(t).__name__} left the label as it was"

"""RealScansOnlyd: scanner-side steps for real scans; a foreground mask for generated ones."""

from __future__ import annotations

import pytest
import torch

from mrivol.transforms import RealScansOnlyd


def _mark(d):
    return {**d, "brain_mask": torch.zeros_like(d["image"], dtype=torch.uint8), "ran": True}


def _item(**extra):
    image = torch.full((1, 6, 6, 6), 20.0)  # a generator's background: near, not at, zero
    image[:, 2:4, 2:4, 2:4] = 1000.0
    return {"image": image, "case_id": "gan-f0-0001", **extra}


@pytest.mark.parametrize("flag", [{}, {"synthetic": False}], ids=["unflagged", "real"])
def test_real_items_go_through_the_wrapped_steps(flag):
    out = RealScansOnlyd([_mark])(_item(**flag))
    assert out["ran"] and not out["brain_mask"].any()


def test_synthetic_items_skip_them_and_get_a_foreground_mask_and_zero_background():
    out = RealScansOnlyd([_mark])(_item(synthetic=True))
    assert "ran" not in out
    assert out["brain_mask"].sum() == 8 and out["brain_mask"][0, 2:4, 2:4, 2:4].all()
    assert out["image"].sum() == 8 * 1000.0  # background zeroed, as a skull strip leaves it


def test_an_empty_generated_image_is_named():
    item = _item(synthetic=True)
    item["image"] = torch.zeros_like(item["image"])
    with pytest.raises(ValueError, match="gan-f0-0001: the generated image is empty"):
        RealScansOnlyd([_mark])(item)

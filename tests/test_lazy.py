"""Lazy package attributes: light imports, the same objects, clear errors."""

from __future__ import annotations

import pytest

from mrivol.lazy import lazy_exports


def test_names_load_their_module_on_first_use():
    getattr_, dir_ = lazy_exports("mrivol.metrics", {"dice_score": "segmentation"})
    from mrivol.metrics.segmentation import dice_score

    assert getattr_("dice_score") is dice_score
    assert dir_() == ["dice_score"]


def test_unknown_names_raise_attribute_error():
    getattr_, _ = lazy_exports("mrivol.metrics", {})
    with pytest.raises(AttributeError, match="'mrivol.metrics' has no attribute 'nope'"):
        getattr_("nope")


@pytest.mark.parametrize("package", ["mrivol.metrics", "mrivol.preprocessing"])
def test_every_public_name_resolves(package):
    import importlib

    module = importlib.import_module(package)
    assert module.__all__ and all(getattr(module, name) is not None for name in module.__all__)

"""The ``Examples:`` blocks of every metrics module run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "brats_regions",
    "surface_distance",
    "segmentation",
    "brats_hd95_metric",
    "qu_brats",
    "classification",
]


@pytest.mark.parametrize("name", MODULES, ids=MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"mrivol.metrics.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0

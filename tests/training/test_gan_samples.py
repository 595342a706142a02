"""The GAN's minority class: the rarest real class of the fold's training split."""

from __future__ import annotations

import pytest

from mrivol.training.gan_samples import minority_class, minority_items


@pytest.mark.parametrize(
    ("labels", "class_index", "expected"),
    [([0, 0, 0, 1, 1, 2], None, 2), ([0, 1, 1, 2, 2], None, 0), ([0, 0, 1, 2], 0, 0)],
    ids=["rarest-last", "rarest-first", "explicit"],
)
def test_minority_items_picks_the_rarest_real_class(labels, class_index, expected):
    datalist = [{"label": c, "synthetic": False} for c in labels]
    datalist += [{"label": expected, "synthetic": True}] * 5  # never counted nor returned
    assert minority_class(datalist, class_index=class_index) == expected
    items = minority_items(datalist, class_index=class_index)
    assert len(items) == labels.count(expected) and {i["label"] for i in items} == {expected}
    assert not any(i["synthetic"] for i in items)


@pytest.mark.parametrize(
    ("datalist", "match"),
    [
        ([{"label": 0}, {"label": 1}], "no training scan of class 2"),
        ([{"label": 2, "synthetic": True}], "no real scan"),
    ],
    ids=["absent-class", "only-synthetic"],
)
def test_minority_class_names_the_problem(datalist, match):
    with pytest.raises(ValueError, match=match):
        minority_class(datalist, class_index=2)

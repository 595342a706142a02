"""Mirroring TTA: the mean over every flip combination, flipped back."""

from __future__ import annotations

import itertools

import pytest
import torch

from mrivol.inference.tta import FlipTTA, flip_combinations


@pytest.mark.parametrize(("axes", "n"), [((0,), 2), ((0, 1), 4), ((0, 1, 2), 8)], ids=str)
def test_every_subset_of_the_axes_once(axes, n):
    combos = flip_combinations(axes)
    assert len(combos) == n == len(set(combos)) and combos[0] == ()


def test_flip_equivariant_network_is_unchanged():
    net = torch.nn.Conv3d(2, 3, 1)  # a 1x1x1 convolution commutes with every flip
    x = torch.randn(1, 2, 6, 5, 4)
    with torch.no_grad():
        assert torch.allclose(FlipTTA(net)(x), net(x), atol=1e-6)


def test_equals_the_mean_of_flipped_passes():
    torch.manual_seed(0)
    net = torch.nn.Conv3d(1, 1, 3, padding=1)
    x = torch.randn(1, 1, 6, 6, 6)
    expected = 0
    for r in range(4):
        for dims in itertools.combinations((2, 3, 4), r):
            expected = expected + torch.flip(net(torch.flip(x, dims)), dims)
    with torch.no_grad():
        assert torch.allclose(FlipTTA(net)(x), expected / 8, atol=1e-6)
        assert not torch.allclose(FlipTTA(net)(x), net(x), atol=1e-3)  # not a no-op


@pytest.mark.parametrize("axes", [(3,), (0, 0), (-1,)], ids=str)
def test_bad_axes_are_refused(axes):
    with pytest.raises(ValueError, match="axes"):
        FlipTTA(torch.nn.Identity(), axes=axes)

"""3D DCGAN: shapes, output range, argument checks and which network each loss trains."""

from __future__ import annotations

import pytest
import torch

from mrivol.networks import (
    DCGANDiscriminator3D,
    DCGANGenerator3D,
    DiscriminatorLoss,
    GeneratorLoss,
)


@pytest.mark.parametrize(
    ("shape", "channels"),
    [((16, 24, 16), (32, 16)), ((16, 16, 32), (16, 8, 8)), ((8, 8, 8), (8,))],
    ids=["two-levels", "three-levels-anisotropic", "one-level"],
)
def test_generator_and_discriminator_shapes(shape, channels):
    g = DCGANGenerator3D(latent_size=8, out_shape=shape, channels=channels)
    d = DCGANDiscriminator3D(in_shape=shape, channels=tuple(reversed(channels)))
    fake = g(torch.randn(3, 8))
    assert fake.shape == (3, 1, *shape)
    assert fake.min() >= -1.0 and fake.max() <= 1.0  # tanh output
    assert d(fake).shape == (3, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"out_shape": (20, 24, 16), "channels": (8, 8, 8)}, "divisible by 2"),
        ({"out_shape": (16, 16), "channels": (8,)}, "3 sizes"),
        ({"latent_size": 0}, "latent_size"),
    ],
    ids=["not-divisible", "2d-shape", "zero-latent"],
)
def test_generator_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DCGANGenerator3D(**kwargs)


def test_dcgan_init_matches_the_paper():
    g = DCGANGenerator3D(latent_size=16, out_shape=(16, 16, 16), channels=(64, 32))
    w = g.upsample[0].conv.weight
    assert abs(float(w.std()) - 0.02) < 0.004 and abs(float(w.mean())) < 0.002


def test_discriminator_loss_trains_only_the_discriminator():
    g = DCGANGenerator3D(latent_size=8, out_shape=(8, 8, 8), channels=(8,))
    d = DCGANDiscriminator3D(in_shape=(8, 8, 8), channels=(8,))
    loss = DiscriminatorLoss(d, real_label=0.9)(g(torch.randn(2, 8)), torch.rand(2, 1, 8, 8, 8))
    loss.backward()
    assert all(p.grad is None for p in g.parameters())  # fakes detached
    assert all(p.grad is not None for p in d.parameters())


def test_generator_loss_reaches_the_generator():
    g = DCGANGenerator3D(latent_size=8, out_shape=(8, 8, 8), channels=(8,))
    d = DCGANDiscriminator3D(in_shape=(8, 8, 8), channels=(8,))
    GeneratorLoss(d)(g(torch.randn(2, 8))).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())

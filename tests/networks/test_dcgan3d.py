"""3D DCGAN: shapes, output range, argument checks and which network each loss trains."""

from __future__ import annotations

import pytest
import torch

from mrivol.losses import DiffAugment3D, DiscriminatorLoss, GeneratorLoss
from mrivol.networks import DCGANDiscriminator3D, DCGANGenerator3D


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
    w = g.upsample[0].conv.weight.detach()
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


def test_diffaugment_shifts_with_background_fill_and_jitters_intensity():
    torch.manual_seed(0)
    x = torch.full((6, 1, 8, 8, 8), -1.0)
    x[:, :, 3:5, 3:5, 3:5] = 1.0  # a bright cube on background
    plain = DiffAugment3D(shift=2, contrast=0.0, brightness=0.0)(x)
    assert plain.shape == x.shape
    assert torch.equal(plain.unique(), torch.tensor([-1.0, 1.0]))  # moved, not resampled
    assert (plain == 1).sum((1, 2, 3, 4)).eq(8).all()  # the cube stays whole (|shift| <= 2)
    centres = [torch.nonzero(v[0] == 1).float().mean(0) for v in plain]
    assert len({tuple(c.tolist()) for c in centres}) > 1  # volumes shifted independently
    jittered = DiffAugment3D(shift=0, contrast=0.2, brightness=0.2)(x)
    gain = (jittered[:, 0, 4, 4, 4] - jittered[:, 0, 0, 0, 0]) / 2
    assert ((gain - 1).abs() <= 0.1 + 1e-6).all() and not torch.allclose(gain, torch.ones(6))
    assert torch.equal(DiffAugment3D(shift=0, contrast=0, brightness=0)(x), x)


def test_augmented_losses_pass_gradients_through_the_augmentation():
    g = DCGANGenerator3D(latent_size=8, out_shape=(8, 8, 8), channels=(8,))
    d = DCGANDiscriminator3D(in_shape=(8, 8, 8), channels=(8,))
    aug = DiffAugment3D(shift=2)
    GeneratorLoss(d, augment=aug)(g(torch.randn(2, 8))).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
    g.zero_grad()
    DiscriminatorLoss(d, augment=aug)(g(torch.randn(2, 8)), torch.rand(2, 1, 8, 8, 8)).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in g.parameters())
    with pytest.raises(ValueError, match="must be >= 0"):
        DiffAugment3D(shift=-1)

"""3D DCGAN: generator and discriminator (Radford et al., ICLR 2016).

Radford, Metz and Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016 (arXiv:1511.06434), extended to volumes as in the
3D GANs used for MRI augmentation. The DCGAN rules are kept: strided (transposed) convolutions
instead of pooling, batch norm everywhere except the generator output and the discriminator
input, ReLU in the generator with a ``tanh`` output, LeakyReLU(0.2) in the discriminator, and
weights drawn from N(0, 0.02). MONAI's ``Generator`` / ``Discriminator`` are generic regressors
without these rules, hence this module (built from MONAI's ``Convolution`` block). The losses are
:mod:`mrivol.losses.adversarial`.

Examples:
    >>> g = DCGANGenerator3D(latent_size=32, out_shape=(16, 24, 16), channels=(32, 16))
    >>> d = DCGANDiscriminator3D(in_shape=(16, 24, 16), channels=(16, 32))
    >>> fake = g(torch.randn(2, 32))
    >>> fake.shape, d(fake).shape
    (torch.Size([2, 1, 16, 24, 16]), torch.Size([2, 1]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

__all__ = ["DCGANDiscriminator3D", "DCGANGenerator3D", "dcgan_init"]


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), batch-norm weights N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm3d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _start_shape(shape: Sequence[int], levels: int, who: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    factor = 2**levels
    if len(shape) != 3 or any(s % factor or s < factor for s in shape):
        raise ValueError(
            f"{who}: volume shape {shape} must be 3 sizes divisible by 2**{levels} = {factor} "
            f"(one halving per level of channels); pick e.g. "
            f"{tuple(max(factor, round(s / factor) * factor) for s in shape)}."
        )
    return tuple(s // factor for s in shape)


class DCGANGenerator3D(nn.Module):
    """Latent vector (B, latent_size) -> volume (B, out_channels, H, W, D) in [-1, 1].

    A linear projection to ``channels[0]`` feature maps of ``out_shape / 2**len(channels)``
    voxels, then one stride-2 transposed convolution (BN, ReLU) per entry of ``channels``, the
    last one to ``out_channels`` with ``tanh``.

    Args:
        latent_size: length of the latent code ``z``.
        out_shape: output volume size (H, W, D); each divisible by ``2**len(channels)``.
        channels: feature maps before each upsampling, coarsest first.
        out_channels: output channels (1 for a T1 scan).

    Raises:
        ValueError: for a non-positive size or an ``out_shape`` not divisible as required.
    """

    def __init__(
        self,
        *,
        latent_size: int = 64,
        out_shape: Sequence[int] = (40, 48, 40),
        channels: Sequence[int] = (128, 64, 32),
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if latent_size < 1 or out_channels < 1 or not channels or min(channels) < 1:
            raise ValueError(
                f"DCGANGenerator3D: need latent_size, out_channels and channels >= 1, got "
                f"{latent_size}, {out_channels}, {channels}."
            )
        self.latent_size, self.out_shape = int(latent_size), tuple(int(s) for s in out_shape)
        self.start_shape = _start_shape(out_shape, len(channels), "DCGANGenerator3D")
        n_start = channels[0] * int(torch.tensor(self.start_shape).prod())
        self.project = nn.Sequential(
            nn.Linear(latent_size, n_start, bias=False), nn.BatchNorm1d(n_start), nn.ReLU(True)
        )
        outs = (*channels[1:], out_channels)
        layers = [
            Convolution(
                3, cin, cout, strides=2, kernel_size=4, is_transposed=True, padding=1,
                output_padding=0, act="RELU", norm="BATCH", bias=i == len(channels) - 1,
                conv_only=i == len(channels) - 1,
            )
            for i, (cin, cout) in enumerate(zip(channels, outs, strict=True))
        ]  # fmt: skip
        self.upsample = nn.Sequential(*layers, nn.Tanh())
        self.channels = channels
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generate volumes from ``z`` (B, latent_size); returns (B, out_channels, H, W, D)."""
        x = self.project(z.reshape(z.shape[0], -1))
        return self.upsample(x.reshape(z.shape[0], self.channels[0], *self.start_shape))


class DCGANDiscriminator3D(nn.Module):
    """Volume (B, in_channels, H, W, D) -> one real/fake logit (B, 1).

    One stride-2 convolution per entry of ``channels`` (LeakyReLU 0.2, batch norm except on
    the first), then a linear layer over the flattened last feature maps.

    Args:
        in_shape: input volume size (H, W, D); each divisible by ``2**len(channels)``.
        channels: feature maps after each downsampling, finest first.
        in_channels: input channels.
        dropout: dropout before the linear layer (stabilises D on small data sets).

    Raises:
        ValueError: for a non-positive size or an ``in_shape`` not divisible as required.
    """

    def __init__(
        self,
        *,
        in_shape: Sequence[int] = (40, 48, 40),
        channels: Sequence[int] = (32, 64, 128),
        in_channels: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if in_channels < 1 or not channels or min(channels) < 1:
            raise ValueError(
                f"DCGANDiscriminator3D: need in_channels and channels >= 1, got "
                f"{in_channels}, {channels}."
            )
        end_shape = _start_shape(in_shape, len(channels), "DCGANDiscriminator3D")
        ins = (in_channels, *channels[:-1])
        layers = [
            Convolution(
                3, cin, cout, strides=2, kernel_size=4, padding=1, bias=False,
                act=("LEAKYRELU", {"negative_slope": 0.2, "inplace": True}),
                norm=None if i == 0 else "BATCH",
            )
            for i, (cin, cout) in enumerate(zip(ins, channels, strict=True))
        ]  # fmt: skip
        n_end = channels[-1] * int(torch.tensor(end_shape).prod())
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(n_end, 1))
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real/fake logits (B, 1) of ``x`` (B, in_channels, H, W, D)."""
        return self.head(self.features(x))

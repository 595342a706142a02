"""Adversarial losses of the 3D DCGAN, with differentiable augmentation of what D sees.

The losses follow MONAI's GAN tutorial and plug into :class:`monai.engines.GanTrainer`
(``d_loss_function(fakes, reals)``, ``g_loss_function(fakes)``); the networks are
:mod:`mrivol.networks.dcgan3d`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DiffAugment3D", "DiscriminatorLoss", "GeneratorLoss"]


class DiffAugment3D(nn.Module):
    """Differentiable augmentation of everything the discriminator sees, reals and fakes alike.

    Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020:
    with a handful of training volumes D memorises them and the generator gets no useful
    gradient (on 8 minority scans plain DCGAN produced checkerboard noise); augmenting both
    sides the same way, differentiably, lets G learn from few volumes. Per volume: a random
    translation of up to ``shift`` voxels (background ``fill`` enters at the border) and a
    random contrast (x (1 +- contrast/2)) and brightness (+- brightness/2) change.

    Args:
        shift: maximum translation per axis, voxels (0: none).
        contrast: width of the contrast factor's range around 1.
        brightness: width of the offset's range around 0.
        fill: background value (-1 for volumes scaled to [-1, 1]).
    """

    def __init__(
        self,
        *,
        shift: int = 4,
        contrast: float = 0.2,
        brightness: float = 0.2,
        fill: float = -1.0,
    ) -> None:
        super().__init__()
        if shift < 0 or contrast < 0 or brightness < 0:
            raise ValueError(
                f"DiffAugment3D: shift, contrast and brightness must be >= 0, got "
                f"{shift}, {contrast}, {brightness}."
            )
        self.shift, self.contrast, self.brightness, self.fill = (
            int(shift),
            float(contrast),
            float(brightness),
            float(fill),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, size = x.shape[0], x.shape[2:]
        if self.shift:
            k = self.shift
            padded = torch.nn.functional.pad(x - self.fill, (k,) * 6) + self.fill
            starts = torch.randint(0, 2 * k + 1, (b, 3)).tolist()
            x = torch.cat([
                padded[i : i + 1, :, s0 : s0 + size[0], s1 : s1 + size[1], s2 : s2 + size[2]]
                for i, (s0, s1, s2) in enumerate(starts)
            ])  # fmt: skip
        shape = (b,) + (1,) * (x.ndim - 1)
        gain = 1 + self.contrast * (torch.rand(shape, device=x.device) - 0.5)
        offset = self.brightness * (torch.rand(shape, device=x.device) - 0.5)
        return x * gain + offset


class DiscriminatorLoss(nn.Module):
    """``GanTrainer``'s ``d_loss_function(fakes, reals)``: BCE of D on reals (1) and fakes (0).

    Fakes are detached, so only the discriminator learns from this loss; ``real_label`` below
    1 is one-sided label smoothing (Salimans et al., "Improved Techniques for Training GANs",
    NeurIPS 2016).

    Args:
        discriminator: the discriminator network.
        real_label: target for real volumes (1.0, or e.g. 0.9 to smooth).
        augment: applied to reals and fakes before D (e.g. :class:`DiffAugment3D`; the same
            module must be given to :class:`GeneratorLoss`).
    """

    def __init__(
        self,
        discriminator: nn.Module,
        *,
        real_label: float = 1.0,
        augment: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.d, self.real_label = discriminator, float(real_label)
        self.augment = augment if augment is not None else nn.Identity()
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, fakes: torch.Tensor, reals: torch.Tensor) -> torch.Tensor:
        real_logits = self.d(self.augment(reals.float()).contiguous())
        fake_logits = self.d(self.augment(fakes.float().detach()).contiguous())
        real = self.bce(real_logits, torch.full_like(real_logits, self.real_label))
        fake = self.bce(fake_logits, torch.zeros_like(fake_logits))
        return (real + fake) / 2


class GeneratorLoss(nn.Module):
    """``GanTrainer``'s ``g_loss_function(fakes)``: non-saturating BCE of D on fakes vs. 1.

    Args:
        discriminator: the discriminator network (its gradients are computed but only the
            generator's optimizer steps on this loss).
        augment: the discriminator's differentiable augmentation (as in
            :class:`DiscriminatorLoss`).
    """

    def __init__(self, discriminator: nn.Module, *, augment: nn.Module | None = None) -> None:
        super().__init__()
        self.d = discriminator
        self.augment = augment if augment is not None else nn.Identity()
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, fakes: torch.Tensor) -> torch.Tensor:
        logits = self.d(self.augment(fakes.float()).contiguous())
        return self.bce(logits, torch.ones_like(logits))

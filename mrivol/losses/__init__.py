"""Loss terms beyond MONAI's: deep supervision, multi-task, adversarial, class weights.

* :mod:`~mrivol.losses.deep_supervision`: a loss over stacked deep-supervision outputs.
* :mod:`~mrivol.losses.multitask`: segmentation + weighted cross-entropy.
* :mod:`~mrivol.losses.adversarial`: DCGAN generator / discriminator losses, DiffAugment.
* :mod:`~mrivol.losses.class_weights`: inverse-frequency class weights.
* :mod:`~mrivol.losses.boundary`: a region loss plus MONAI's Hausdorff distance-transform term.
"""

from __future__ import annotations

from mrivol.losses.adversarial import DiffAugment3D, DiscriminatorLoss, GeneratorLoss
from mrivol.losses.boundary import BoundaryCompoundLoss
from mrivol.losses.class_weights import inverse_frequency_weights
from mrivol.losses.deep_supervision import StackedDeepSupervisionLoss
from mrivol.losses.multitask import MultiTaskLoss

__all__ = [
    "BoundaryCompoundLoss",
    "DiffAugment3D",
    "DiscriminatorLoss",
    "GeneratorLoss",
    "MultiTaskLoss",
    "StackedDeepSupervisionLoss",
    "inverse_frequency_weights",
]

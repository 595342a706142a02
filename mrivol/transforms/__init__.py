"""Preprocessing and label transforms as MONAI dictionary transforms."""

from __future__ import annotations

from mrivol.transforms.brats_regions_to_labels import BratsRegionsToLabels, BratsRegionsToLabelsd

__all__ = ["BratsRegionsToLabels", "BratsRegionsToLabelsd"]

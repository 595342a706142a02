"""Run the scanner-side preprocessing on real scans only; generated samples skip it.

A DCGAN (``bundles/dcgan_aug``) learns volumes that were already skull-stripped,
bias-corrected and brought to MNI space, so its samples are brain-only images on an MNI brain
box. Pushing them through skull stripping, N4 and registration again is wrong (and fails on an
early, noisy generator). :class:`RealScansOnlyd` wraps those steps: a real item (``synthetic``
false or absent) goes through them; a synthetic item gets its brain mask from its own
foreground instead (and a zero background, as skull stripping leaves), so the steps after it
(crop to the brain, normalise inside it) treat both alike.

Examples:
    >>> steps = RealScansOnlyd([SkullStripd(...), N4BiasFieldCorrectiond(...)])  # doctest: +SKIP
    >>> steps({"image": t1, "synthetic": True})["brain_mask"]  # image > 5% of max  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import Compose, Transform

__all__ = ["RealScansOnlyd"]


class RealScansOnlyd(Transform):
    """Apply ``transforms`` to real items; give synthetic items a foreground brain mask.

    Args:
        transforms: the steps real scans need (skull strip, N4, registration).
        synthetic_key: the item flag (``mrivol.data.to_datalist`` sets ``synthetic``).
        image_key: the image whose foreground is a synthetic item's brain mask.
        mask_key: where the mask goes (the key the wrapped skull strip would write).
        threshold: foreground is ``image > threshold * max(image)`` (a generator's background
            is near, not at, its minimum).
    """

    def __init__(
        self,
        transforms: Sequence[Callable] | Callable,
        *,
        synthetic_key: str = "synthetic",
        image_key: str = "image",
        mask_key: str = "brain_mask",
        threshold: float = 0.05,
    ) -> None:
        self.transforms = Compose(transforms)
        self.synthetic_key, self.image_key, self.mask_key = synthetic_key, image_key, mask_key
        self.threshold = float(threshold)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        if not bool(data.get(self.synthetic_key, False)):
            return self.transforms(dict(data))
        d = dict(data)
        image = d[self.image_key]
        mask = (image[:1] > self.threshold * image.max()).to(torch.uint8)
        if not mask.any():
            name = d.get("case_id", "a synthetic sample")
            raise ValueError(f"{name}: the generated image is empty (no voxel above background)")
        d[self.mask_key] = mask
        d[self.image_key] = image * mask
        return d

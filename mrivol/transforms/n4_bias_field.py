"""N4 bias-field correction (SimpleITK), fitted on a shrunk image, applied at full resolution.

Tustison et al., "N4ITK: Improved N3 Bias Correction", IEEE TMI 29 (2010). Fitting the B-spline
field on an image shrunk by ``shrink_factor`` and reconstructing it on the full-resolution grid
with ``GetLogBiasFieldAsImage`` is what ANTs' ``N4BiasFieldCorrection -s 4`` does; measured here
~3-8 s instead of ~400 s at full resolution on a 1 mm 240x240x155 volume (FACTS.md).

Examples:
    >>> n4 = N4BiasFieldCorrectiond(keys=["t1", "t2"], mask_key="brain_mask")
    >>> out = n4({"t1": t1, "t2": t2, "brain_mask": mask})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_numpy

from mrivol.transforms.sitk_bridge import affine_of, from_sitk, to_sitk, with_array

__all__ = ["N4BiasFieldCorrection", "N4BiasFieldCorrectiond"]


class N4BiasFieldCorrection(Transform):
    """Divide each channel of an image by its N4-estimated multiplicative bias field.

    The field is fitted on the image shrunk by ``shrink_factor`` (per axis, relative to the
    finest spacing, so a 1x1x5 mm image is shrunk 4x4x1), inside ``mask`` (or an Otsu foreground
    when none is given) and only where the image is positive, then reconstructed on the full grid.

    Args:
        shrink_factor: shrink of the finest axis for the fit (ANTs' ``-s``).
        iterations: maximum iterations per fitting level (the number of levels is its length).
        convergence: convergence threshold of each level.
        fwhm: full width at half maximum of the Gaussian deconvolving the histogram.
        control_points: B-spline control points per axis at the first level.
        spline_order: B-spline order.

    Raises:
        ValueError: on non-positive ``shrink_factor`` or empty ``iterations``.

    Examples:
        >>> n4 = N4BiasFieldCorrection(shrink_factor=4, iterations=(50, 50, 50))
        >>> corrected = n4(img, mask=brain_mask)  # img (C, H, W, D) MetaTensor  # doctest: +SKIP
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        *,
        shrink_factor: int = 4,
        iterations: Sequence[int] = (50, 50, 50),
        convergence: float = 1e-3,
        fwhm: float = 0.15,
        control_points: int = 4,
        spline_order: int = 3,
    ) -> None:
        if shrink_factor < 1 or not iterations:
            raise ValueError(
                f"N4: shrink_factor ({shrink_factor}) must be >= 1 and iterations non-empty"
            )
        self.shrink_factor = int(shrink_factor)
        self.iterations = [int(i) for i in iterations]
        self.convergence = float(convergence)
        self.fwhm = float(fwhm)
        self.control_points = int(control_points)
        self.spline_order = int(spline_order)

    def log_bias_field(self, volume: np.ndarray, affine: np.ndarray, mask: np.ndarray | None):
        """Return the log bias field (H, W, D) float32 of one 3D volume.

        Raises:
            ValueError: if the fitting mask holds fewer than 100 positive voxels.
        """
        image = to_sitk(volume.astype(np.float32), affine)
        fit = volume > 0 if mask is None else (mask > 0) & (volume > 0)
        if mask is None:  # Otsu foreground, as ANTs does without a mask
            otsu = sitk.OtsuThreshold(image, 0, 1)
            fit &= from_sitk(otsu)[0] > 0
        if int(fit.sum()) < 100:
            raise ValueError(f"N4: only {int(fit.sum())} positive voxels inside the mask")
        mask_img = to_sitk(fit.astype(np.uint8), affine)
        spacing = np.asarray(image.GetSpacing())
        shrink = [max(1, round(self.shrink_factor * spacing.min() / s)) for s in spacing]
        small, small_mask = sitk.Shrink(image, shrink), sitk.Shrink(mask_img, shrink)
        n4 = sitk.N4BiasFieldCorrectionImageFilter()
        n4.SetMaximumNumberOfIterations(self.iterations)
        n4.SetConvergenceThreshold(self.convergence)
        n4.SetBiasFieldFullWidthAtHalfMaximum(self.fwhm)
        n4.SetNumberOfControlPoints([self.control_points] * 3)
        n4.SetSplineOrder(self.spline_order)
        n4.Execute(small, small_mask)
        return from_sitk(n4.GetLogBiasFieldAsImage(image))[0].astype(np.float32)

    def __call__(self, img: torch.Tensor | np.ndarray, mask=None, affine: np.ndarray | None = None):
        """Correct ``img`` (C, H, W, D); ``mask`` (1, H, W, D) restricts the fit.

        Returns:
            The corrected image, float32, same type, metadata and affine as ``img``.
        """
        aff = affine_of(img, affine)
        arr = convert_to_numpy(img)
        m = None
        if mask is not None:
            m = convert_to_numpy(mask)
            m = m[0]
        out = np.empty(arr.shape, dtype=np.float32)
        for c in range(arr.shape[0]):
            vol = arr[c].astype(np.float32)
            out[c] = vol / np.exp(self.log_bias_field(vol, aff, m))
        return with_array(img, out)


class N4BiasFieldCorrectiond(MapTransform):
    """Dictionary wrapper of :class:`N4BiasFieldCorrection` (fit inside ``data[mask_key]``).

    Args:
        keys: images to correct (each channel gets its own field).
        mask_key: fitting mask key (e.g. the skull-strip mask); ``None`` or a missing key means
            an Otsu foreground.
        allow_missing_keys: do not fail on a missing key.
        **kwargs: the parameters of :class:`N4BiasFieldCorrection`.
    """

    backend = N4BiasFieldCorrection.backend

    def __init__(
        self,
        keys: KeysCollection,
        *,
        mask_key: str | None = "brain_mask",
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_key = mask_key
        self.n4 = N4BiasFieldCorrection(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        mask = d.get(self.mask_key) if self.mask_key else None
        for key in self.key_iterator(d):
            d[key] = self.n4(d[key], mask=mask)
        return d

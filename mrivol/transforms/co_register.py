"""Rigid or affine co-registration of a modality onto a reference modality (SimpleITK).

Mattes mutual information (Mattes et al., IEEE TMI 22, 2003), random sampling with a fixed
seed, a pyramid (default shrink 4-2, smoothing 2-1 mm: the 1 mm level costs more than it
gains, 0.06 vs 0.07 mm error, 13 vs 9 s), regular-step gradient descent with
scales from physical shift, as in the SimpleITK registration notebooks
(https://github.com/InsightSoftwareConsortium/SimpleITK-Notebooks,
``60_Registration_Introduction``).
The moving image is resampled onto the reference grid, so the result carries the reference's
affine and shape.

Examples:
    >>> coreg = CoRegisterd(keys=["t1ce", "t2", "flair"], ref_key="t1")
    >>> out = coreg(data)  # every key now on the t1 grid  # doctest: +SKIP
    >>> # 4x4 RAS matrix, reference world -> moving world:
    >>> out["t2"].meta["coregister"]["matrix_ras"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_numpy

from mrivol.transforms.sitk_bridge import (
    LPS,
    affine_of,
    resample_channels,
    to_sitk,
    with_array,
)

__all__ = ["CoRegister", "CoRegisterd", "transform_to_ras_matrix"]

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
    "nearest": sitk.sitkNearestNeighbor,
}


def _unwrap(transform: sitk.Transform) -> sitk.Transform:
    """The single Euler/affine transform inside a registration result."""
    if isinstance(transform, sitk.CompositeTransform) and transform.GetNumberOfTransforms() == 1:
        transform = transform.GetNthTransform(0)
    return transform.Downcast()


def transform_to_ras_matrix(transform: sitk.Transform) -> np.ndarray:
    """4x4 RAS matrix of a SimpleITK (fixed LPS -> moving LPS) affine-like transform."""
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(np.asarray(transform.GetMatrix()).ravel().tolist())
    tx.SetTranslation(transform.GetTranslation())
    tx.SetCenter(transform.GetCenter())
    a = np.asarray(tx.GetMatrix()).reshape(3, 3)
    c = np.asarray(tx.GetCenter())
    lps = np.eye(4)
    lps[:3, :3] = a
    lps[:3, 3] = np.asarray(tx.GetTranslation()) + c - a @ c
    return LPS @ lps @ LPS


class CoRegister(Transform):
    """Register ``img`` to ``reference`` and resample it onto the reference grid.

    Args:
        transform: ``"rigid"`` (6 parameters) or ``"affine"`` (12; starts from the rigid result).
        bins: histogram bins of Mattes mutual information.
        samples: voxels sampled per iteration (at random, per pyramid level; the cost of an
            iteration does not grow with the image size).
        iterations: maximum optimizer iterations per pyramid level.
        shrink: pyramid shrink factors, coarse to fine.
        smoothing_mm: Gaussian smoothing per level, in mm.
        interpolation: final resampling, ``"linear"``, ``"bspline"`` or ``"nearest"``.
        seed: seed of the metric's random sampling (same seed -> same result).
        init: initial alignment, ``"geometry"`` (grid centres: images of one session) or
            ``"moments"`` (centres of mass: a brain and a template).

    Raises:
        ValueError: on an unknown transform or interpolation, or mismatched pyramid lengths.

    Examples:
        >>> coreg = CoRegister(transform="rigid")
        >>> moved = coreg(t2, reference=t1)  # (C, H, W, D) on the t1 grid  # doctest: +SKIP
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        *,
        transform: str = "rigid",
        bins: int = 50,
        samples: int = 50_000,
        iterations: int = 100,
        shrink: tuple[int, ...] = (4, 2),
        smoothing_mm: tuple[float, ...] = (2.0, 1.0),
        interpolation: str = "linear",
        seed: int = 0,
        init: str = "geometry",
    ) -> None:
        if transform not in ("rigid", "affine"):
            raise ValueError(f"transform must be 'rigid' or 'affine', got {transform!r}")
        if interpolation not in _INTERPOLATORS:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATORS)}")
        if len(shrink) != len(smoothing_mm):
            raise ValueError(f"shrink {shrink} and smoothing_mm {smoothing_mm} differ in length")
        self.transform = transform
        self.bins, self.samples, self.iterations = int(bins), int(samples), int(iterations)
        self.shrink, self.smoothing_mm = list(shrink), list(smoothing_mm)
        if init not in ("geometry", "moments"):
            raise ValueError(f"init must be 'geometry' or 'moments', got {init!r}")
        self.interpolation, self.seed, self.init = interpolation, int(seed), init

    def _run(self, fixed: sitk.Image, moving: sitk.Image, initial: sitk.Transform):
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=self.bins)
        reg.MetricUseFixedImageGradientFilterOff()  # gradients at the samples only:
        reg.MetricUseMovingImageGradientFilterOff()  # no full-image gradient per level
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        n_vox = np.prod(fixed.GetSize())
        fractions = [min(1.0, self.samples * f**3 / n_vox) for f in self.shrink]
        reg.SetMetricSamplingPercentagePerLevel(fractions, self.seed)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=1.0, minStep=1e-4, numberOfIterations=self.iterations,
            gradientMagnitudeTolerance=1e-6,
        )  # fmt: skip
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel(self.shrink)
        reg.SetSmoothingSigmasPerLevel(self.smoothing_mm)
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        reg.SetInitialTransform(initial, inPlace=False)
        return reg.Execute(fixed, moving)

    def register(self, fixed: sitk.Image, moving: sitk.Image) -> sitk.Transform:
        """Return the fixed (LPS) -> moving (LPS) transform found by MI registration."""
        fixed = sitk.Cast(fixed, sitk.sitkFloat32)
        moving = sitk.Cast(moving, sitk.sitkFloat32)
        init = sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler3DTransform(),
            sitk.CenteredTransformInitializerFilter.GEOMETRY
            if self.init == "geometry"
            else sitk.CenteredTransformInitializerFilter.MOMENTS,
        )  # fmt: skip
        rigid = _unwrap(self._run(fixed, moving, init))
        if self.transform == "rigid":
            return rigid
        affine = sitk.AffineTransform(3)
        euler = rigid
        affine.SetMatrix(euler.GetMatrix())
        affine.SetTranslation(euler.GetTranslation())
        affine.SetCenter(euler.GetCenter())
        return _unwrap(self._run(fixed, moving, affine))

    def __call__(self, img: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray):
        """Register channel 0 of ``img`` (C, H, W, D) to channel 0 of ``reference``.

        Returns:
            ``img`` resampled onto the reference grid (all channels, float32), with the
            reference's affine and ``meta["coregister"]`` = ``{"transform", "matrix_ras"}``
            (reference world -> moving world, RAS mm) when ``img`` is a MetaTensor.
        """
        ref_aff, mov_aff = affine_of(reference), affine_of(img)
        ref_arr, arr = convert_to_numpy(reference), convert_to_numpy(img)
        fixed = to_sitk(ref_arr[0].astype(np.float32), ref_aff)
        tx = self.register(fixed, to_sitk(arr[0].astype(np.float32), mov_aff))
        out = resample_channels(arr, mov_aff, fixed, tx, _INTERPOLATORS[self.interpolation])
        result = with_array(img, out, affine=ref_aff)
        if hasattr(result, "meta"):
            result.meta["coregister"] = {
                "transform": self.transform,
                "matrix_ras": transform_to_ras_matrix(tx).tolist(),
            }
        return result


class CoRegisterd(MapTransform):
    """Dictionary wrapper of :class:`CoRegister`: every key onto the grid of ``ref_key``.

    Args:
        keys: moving images (the reference itself is skipped if listed).
        ref_key: reference image key, e.g. ``"t1"``.
        allow_missing_keys: do not fail on a missing key.
        **kwargs: the parameters of :class:`CoRegister`.
    """

    backend = CoRegister.backend

    def __init__(
        self,
        keys: KeysCollection,
        *,
        ref_key: str = "t1",
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.coreg = CoRegister(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            if key != self.ref_key:
                d[key] = self.coreg(d[key], reference=d[self.ref_key])
        return d

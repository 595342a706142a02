"""MONAI cumulative metric for the BraTS HD95 (DeepMind surface distances, mm, empty rules).

:class:`RegionMaskMetric` is the base of the metrics on binary region masks (this one and
:class:`mrivol.metrics.lesionwise_metric.LesionwiseMetric`).

MONAI's ``HausdorffDistanceMetric(percentile=95)`` measures unweighted voxel-edge distances
and returns ``nan``/``inf`` on empty masks, so its numbers are not the ones the BraTS
leaderboards report. This metric computes, per sample and channel, :func:`hd95_mm`
(the official BraTS 2023 HD95 with the BraTS empty rules), and plugs into bundles like any
MONAI metric, e.g. through ``monai.handlers.IgniteMetricHandler``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from mrivol.metrics.brats_regions import BRATS2021_MAX_HD95
from mrivol.metrics.segmentation import hd95_mm

__all__ = [
    "BratsHD95Metric",
    "RegionMaskMetric",
    "batch_spacings",
    "check_binary_masks",
    "to_numpy",
]


def batch_spacings(y: torch.Tensor, batch: int, spacing: Any, *, name: str) -> list[np.ndarray]:
    """Voxel spacing (mm) per sample: ``y.pixdim`` for a ``MetaTensor``, else ``spacing``.

    Raises:
        ValueError: ``y`` is a plain tensor and ``spacing`` is ``None``, or the number of
            spacings is not the batch size; the message starts with ``name``.
    """
    if isinstance(y, MetaTensor):
        pixdim = y.pixdim
        per_sample = pixdim if y.is_batch else [pixdim] * batch
    else:
        if spacing is None:
            raise ValueError(
                f"{name}: y is a plain tensor, so the voxel spacing is unknown; "
                "pass spacing=(sx, sy, sz) in mm, or give y as a MetaTensor with its affine."
            )
        arr = np.asarray(spacing, dtype=np.float64)
        per_sample = [arr] * batch if arr.ndim == 1 else list(arr)
    out = [np.asarray(s, dtype=np.float64).ravel()[:3] for s in per_sample]
    if len(out) != batch:
        raise ValueError(f"{name}: got {len(out)} spacings for a batch of {batch}.")
    return out


def check_binary_masks(y_pred: torch.Tensor, y: torch.Tensor | None, *, name: str) -> None:
    """Check that ``y_pred`` and ``y`` are binary (B, C, H, W, D) masks of one shape.

    Raises:
        ValueError: ``y`` is missing, the shapes differ or are not 5D, or a value is not 0/1.
    """
    if y is None:
        raise ValueError(f"{name} needs the ground truth y.")
    if y_pred.ndim != 5 or y_pred.shape != y.shape:
        raise ValueError(
            f"{name} expects y_pred and y of the same shape (B, C, H, W, D), "
            f"got {tuple(y_pred.shape)} and {tuple(y.shape)}."
        )
    for which, t in (("y_pred", y_pred), ("y", y)):
        if not torch.all((t == 0) | (t == 1)):
            raise ValueError(
                f"{name}: {which} must be binary (one-hot / thresholded masks); "
                "apply AsDiscrete(argmax=True, to_onehot=...) or threshold=0.5 first."
            )


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A (Meta)Tensor as a NumPy array on the CPU."""
    if isinstance(t, MetaTensor):
        t = t.as_tensor()
    return t.detach().cpu().numpy()


class RegionMaskMetric(CumulativeIterationMetric):
    """Base of the metrics on binary (B, C, H, W, D) region masks, one value per (sample, C).

    Subclasses implement :meth:`_compute_tensor` and call :func:`check_binary_masks` and
    :meth:`spacings`; :meth:`aggregate` reduces like MONAI's metrics (``nan`` ignored).

    Args:
        spacing: voxel spacing in mm for plain tensors (see :func:`batch_spacings`).
        reduction: MONAI reduction applied in :meth:`aggregate`.
        get_not_nans: whether :meth:`aggregate` also returns the count of non-nan values.
    """

    def __init__(
        self,
        *,
        spacing: Sequence[float] | Sequence[Sequence[float]] | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.spacing = spacing
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def spacings(self, y: torch.Tensor, spacing: Any = None) -> list[np.ndarray]:
        """Per-sample spacing: ``y.pixdim``, else the call's, else the constructor's."""
        spacing = self.spacing if spacing is None else spacing
        return batch_spacings(y, y.shape[0], spacing, name=type(self).__name__)

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the buffered (N, C') values, ignoring ``nan`` like MONAI's metrics.

        Args:
            reduction: overrides the constructor's reduction for this call.

        Returns:
            The reduced values (and the non-nan counts if ``get_not_nans``).

        Raises:
            ValueError: If nothing has been accumulated yet.
        """
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(
                f"{type(self).__name__}.aggregate: no values accumulated; call the metric first."
            )
        f, not_nans = do_metric_reduction(data.clone(), reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class BratsHD95Metric(RegionMaskMetric):
    """HD95 in mm per (sample, region), as the official BraTS evaluation computes it.

    Inputs are binary multi-channel masks, one channel per region (e.g. the TC, WT, ET
    channels of MONAI's ``ConvertToMultiChannelBasedOnBratsClasses`` after thresholding).
    Rules per (sample, channel): both masks empty -> 0 mm; exactly one empty -> ``max_hd95``;
    otherwise the area-weighted robust Hausdorff distance of DeepMind's surface-distance
    (see :mod:`mrivol.metrics.surface_distance`).

    The voxel spacing is read from ``y.pixdim`` when ``y`` is a ``MetaTensor`` (so resampled
    data are measured in their own millimetres); otherwise the ``spacing`` argument of the
    call or of the constructor is used.

    Args:
        spacing: voxel spacing in mm for plain tensors: three numbers, or one triple per
            sample. Ignored when ``y`` is a ``MetaTensor``.
        max_hd95: HD95 when exactly one mask is empty (BraTS 2021 / CaPTk: 373.1287 mm;
            BraTS 2023: 374 mm).
        percentile: percentile of each directed distance set (95 for HD95).
        channel: channel index or indices to evaluate (e.g. ``2`` to log only ET of a
            TC/WT/ET stack, or ``[1, 2, 3]`` to drop a background channel); ``None`` = all.
        reduction: MONAI reduction applied in :meth:`aggregate` (``"mean"``, ``"none"``,
            ``"mean_batch"``, ...); ``nan`` entries are ignored as in MONAI.
        get_not_nans: whether :meth:`aggregate` also returns the count of non-nan values.

    Raises:
        ValueError: On invalid arguments (negative ``max_hd95``, percentile outside
            [0, 100]).

    Examples:
        >>> import torch
        >>> y = torch.zeros(1, 2, 16, 16, 16); y[:, :, 4:10, 4:10, 4:10] = 1
        >>> p = torch.roll(y, 2, dims=2)
        >>> metric = BratsHD95Metric(spacing=(1.0, 1.0, 1.0))
        >>> metric(p, y).tolist()
        [[2.0, 2.0]]
        >>> float(metric.aggregate())
        2.0
    """

    def __init__(
        self,
        *,
        spacing: Sequence[float] | Sequence[Sequence[float]] | None = None,
        max_hd95: float = BRATS2021_MAX_HD95,
        percentile: float = 95.0,
        channel: int | Sequence[int] | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(spacing=spacing, reduction=reduction, get_not_nans=get_not_nans)
        if max_hd95 < 0:
            raise ValueError(f"max_hd95 must be >= 0 mm, got {max_hd95}.")
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}.")
        self.max_hd95 = float(max_hd95)
        self.percentile = float(percentile)
        self.channel = [channel] if isinstance(channel, int) else channel

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, spacing: Any = None, **kwargs: Any
    ) -> torch.Tensor:
        """Compute HD95 (mm) for a batch.

        Args:
            y_pred: binary prediction of shape (B, C, H, W, D).
            y: binary ground truth of shape (B, C, H, W, D).
            spacing: optional per-call spacing for plain tensors (overrides the constructor).
            kwargs: ignored (accepted for MONAI compatibility).

        Returns:
            HD95 in mm of shape (B, C') where C' is the number of selected channels.

        Raises:
            ValueError: If shapes differ, are not 5D, or the inputs are not binary.
        """
        check_binary_masks(y_pred, y, name="BratsHD95Metric")
        channels = list(range(y.shape[1])) if self.channel is None else list(self.channel)
        if any(c < 0 or c >= y.shape[1] for c in channels):
            raise ValueError(
                f"BratsHD95Metric: channel {channels} out of range for C={y.shape[1]}."
            )
        spacings = self.spacings(y, spacing)
        pred_np = to_numpy(y_pred).astype(bool)
        true_np = to_numpy(y).astype(bool)
        out = torch.empty(y.shape[0], len(channels), dtype=torch.float32)
        for b in range(y.shape[0]):
            for j, c in enumerate(channels):
                out[b, j] = hd95_mm(
                    pred_np[b, c],
                    true_np[b, c],
                    spacing=spacings[b],
                    max_hd95=self.max_hd95,
                    percentile=self.percentile,
                )
        return out.to(y_pred.device)

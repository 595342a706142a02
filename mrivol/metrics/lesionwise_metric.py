"""BraTS lesion-wise Dice / HD95 on region channels, and as a MONAI metric for validation.

Networks and validation work on overlapping region channels (TC, WT, ET), not on label maps.
The rules of :mod:`mrivol.metrics.lesionwise_rules` are defined on regions made of labels, so
each voxel gets a code with bit ``i`` set when channel ``i`` is on, and each rule region is
re-expressed as the codes that hold its channel's bit. The regions are then exactly the
channels, and everything else of the rules (dilation, thresholds, penalty, prediction filter,
2024 cross-region merging) applies unchanged through :func:`lesionwise_report`.

Written here because MONAI has no lesion-wise metric (see :mod:`mrivol.metrics.lesionwise`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mrivol.metrics.brats_hd95_metric import RegionMaskMetric, check_binary_masks, to_numpy
from mrivol.metrics.lesionwise import lesionwise_report
from mrivol.metrics.lesionwise_rules import LesionwiseRules, lesionwise_preset

__all__ = ["LesionwiseMetric", "channel_rules", "lesionwise_channels"]

VALUES = ("dice", "hd95")


def channel_rules(rules: LesionwiseRules | str, regions: Sequence[str]) -> LesionwiseRules:
    """The rules with each region made of the channel codes (bit ``i``: channel ``i``).

    Args:
        rules: a :class:`LesionwiseRules` or a preset name (``"BraTS-GLI"``).
        regions: channel names in channel order (``("tc", "wt", "et")``), case-insensitive.

    Raises:
        ValueError: a region of the rules (or a merge partner) has no channel; the message
            names the regions and the channels.

    Examples:
        >>> r = channel_rules("BraTS-GLI", ["tc", "wt", "et"])
        >>> {x.name: x.labels for x in r.regions}["ET"]
        (4, 5, 6, 7)
    """
    rules = lesionwise_preset(rules) if isinstance(rules, str) else rules
    if len(regions) > 8:
        raise ValueError(f"at most 8 region channels fit one code, got {len(regions)}.")
    bit = {name.lower(): 1 << i for i, name in enumerate(regions)}
    missing = [r.name for r in rules.regions if r.name.lower() not in bit]
    if missing:
        raise ValueError(
            f"lesion-wise rules {rules.name} need regions {missing}, which are not among the "
            f"channels {list(regions)}; pick rules whose regions the network predicts."
        )
    codes = range(1, 1 << len(regions))
    return dataclasses.replace(
        rules,
        regions=tuple(
            dataclasses.replace(r, labels=tuple(c for c in codes if c & bit[r.name.lower()]))
            for r in rules.regions
        ),
    )


def _codes(masks: np.ndarray) -> np.ndarray:
    """(C, H, W, D) binary masks -> (H, W, D) uint8 codes, bit ``i`` set where channel ``i``."""
    weights = (1 << np.arange(masks.shape[0], dtype=np.uint8)).reshape(-1, 1, 1, 1)
    return (masks.astype(bool) * weights).sum(axis=0, dtype=np.uint8)


def lesionwise_channels(
    pred_masks: Any,
    true_masks: Any,
    *,
    spacing: Any,
    rules: LesionwiseRules | str,
    regions: Sequence[str],
    case_id: str | None = None,
) -> list[dict[str, Any]]:
    """Lesion-wise scores of one case given as region channels.

    Args:
        pred_masks, true_masks: binary masks of shape (C, H, W, D), channel ``i`` the region
            ``regions[i]``.
        spacing: voxel spacing in mm.
        rules: a :class:`LesionwiseRules` or a preset name.
        regions: channel names in channel order.
        case_id: copied into the rows and used in error messages.

    Returns:
        The rows of :func:`lesionwise_report` (one per reported region of the rules).

    Examples:
        >>> import numpy as np
        >>> t = np.zeros((3, 24, 24, 24), bool); t[:, 4:12, 4:12, 4:12] = True
        >>> p = t.copy(); p[2] = False  # ET missed
        >>> rows = lesionwise_channels(p, t, spacing=(1, 1, 1), rules="BraTS-GLI",
        ...                            regions=("tc", "wt", "et"))
        >>> [(r["region"], r["lesionwise_dice"], r["num_fn"]) for r in rows]
        [('wt', 1.0, 0), ('tc', 1.0, 0), ('et', 0.0, 1)]
    """
    pred, true = np.asarray(pred_masks), np.asarray(true_masks)
    if pred.ndim != 4 or pred.shape != true.shape or pred.shape[0] != len(regions):
        raise ValueError(
            f"case {case_id!r}: expected masks of shape ({len(regions)}, H, W, D), got "
            f"{pred.shape} (prediction) and {true.shape} (ground truth)."
        )
    return lesionwise_report(
        _codes(pred),
        _codes(true),
        spacing=spacing,
        rules=channel_rules(rules, regions),
        case_id=case_id,
    )


class LesionwiseMetric(RegionMaskMetric):
    """BraTS lesion-wise Dice (or HD95) per (sample, channel), as a MONAI cumulative metric.

    Takes the binary region channels of validation (after thresholding) and scores each case
    with :func:`lesionwise_channels`; channels the rules do not report are ``nan`` (ignored by
    the reduction). The spacing is read from ``y.pixdim`` as in
    :class:`~mrivol.metrics.BratsHD95Metric`, so resampled validation data are scored in
    their own millimetres (volume thresholds in mm^3).

    Args:
        rules: preset name (``"BraTS-GLI"``: the 2023 rules) or :class:`LesionwiseRules`.
        regions: channel names in channel order (``["tc", "wt", "et"]``).
        value: ``"dice"`` or ``"hd95"`` (mm).
        spacing, reduction, get_not_nans: see :class:`RegionMaskMetric`.

    Raises:
        ValueError: unknown rules or value, or rules whose regions are not all channels.

    Examples:
        >>> import torch
        >>> y = torch.zeros(1, 3, 24, 24, 24); y[:, :, 4:12, 4:12, 4:12] = 1
        >>> p = y.clone(); p[:, 1, 18:22, 18:22, 18:22] = 1  # a 64 mm^3 false positive in WT
        >>> m = LesionwiseMetric(rules="BraTS-GLI", regions=["tc", "wt", "et"], spacing=(1, 1, 1))
        >>> m(p, y).tolist()
        [[1.0, 0.5, 1.0]]
    """

    def __init__(
        self,
        *,
        rules: LesionwiseRules | str = "BraTS-GLI",
        regions: Sequence[str] = ("tc", "wt", "et"),
        value: str = "dice",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if value not in VALUES:
            raise ValueError(f"value must be one of {VALUES}, got {value!r}.")
        self.regions = [r.lower() for r in regions]
        self.rules = lesionwise_preset(rules) if isinstance(rules, str) else rules
        channel_rules(self.rules, self.regions)  # fails here on missing regions
        self.value = value

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, spacing: Any = None, **kwargs: Any
    ) -> torch.Tensor:
        """Lesion-wise values of shape (B, C) for binary (B, C, H, W, D) masks."""
        check_binary_masks(y_pred, y, name=type(self).__name__)
        if y.shape[1] != len(self.regions):
            raise ValueError(
                f"{type(self).__name__}: {y.shape[1]} channels for regions {self.regions}."
            )
        spacings = self.spacings(y, spacing)
        pred_np, true_np = to_numpy(y_pred), to_numpy(y)
        out = torch.full((y.shape[0], len(self.regions)), float("nan"))
        key = f"lesionwise_{self.value}"
        for b in range(y.shape[0]):
            rows = lesionwise_channels(
                pred_np[b], true_np[b], spacing=spacings[b], rules=self.rules, regions=self.regions
            )
            for row in rows:
                out[b, self.regions.index(row["region"])] = float(row[key])
        return out.to(y_pred.device)

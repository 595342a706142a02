"""Segmentation, uncertainty and classification metrics.

* :mod:`~mrivol.metrics.brats_regions`: ET / TC / WT masks for the BraTS 2021 and 2023 labels.
* :mod:`~mrivol.metrics.surface_distance`: DeepMind area-weighted surface distances (HD95).
* :mod:`~mrivol.metrics.segmentation`: per-case Dice, HD95, sensitivity, specificity, volumes.
* :mod:`~mrivol.metrics.brats_hd95_metric`: the BraTS HD95 as a MONAI cumulative metric.
* :mod:`~mrivol.metrics.qu_brats`: the QU-BraTS uncertainty score.
* :mod:`~mrivol.metrics.classification`: accuracy, per-class scores, ROC-AUC, reports.
"""

from __future__ import annotations

from mrivol.metrics.brats_hd95_metric import BratsHD95Metric
from mrivol.metrics.brats_regions import (
    BRATS2021_MAX_HD95,
    BRATS2023_MAX_HD95,
    BRATS_CONVENTIONS,
    BRATS_REGIONS,
    brats_region_masks,
    default_max_hd95,
)
from mrivol.metrics.classification import (
    ClassificationReport,
    classification_report,
    confusion_matrix,
    roc_auc_ovr,
    write_classification_report,
)
from mrivol.metrics.qu_brats import (
    DEFAULT_QU_THRESHOLDS,
    QUBraTSResult,
    qu_brats_region,
    qu_brats_report,
    rescale_uncertainty,
)
from mrivol.metrics.segmentation import (
    binary_segmentation_metrics,
    dice_score,
    hd95_mm,
    segmentation_report,
)
from mrivol.metrics.surface_distance import (
    SurfaceDistances,
    compute_robust_hausdorff,
    compute_surface_distances,
    neighbour_code_to_surface_area,
)

__all__ = [
    "BRATS2021_MAX_HD95",
    "BRATS2023_MAX_HD95",
    "BRATS_CONVENTIONS",
    "BRATS_REGIONS",
    "DEFAULT_QU_THRESHOLDS",
    "BratsHD95Metric",
    "ClassificationReport",
    "QUBraTSResult",
    "SurfaceDistances",
    "binary_segmentation_metrics",
    "brats_region_masks",
    "classification_report",
    "compute_robust_hausdorff",
    "compute_surface_distances",
    "confusion_matrix",
    "default_max_hd95",
    "dice_score",
    "hd95_mm",
    "neighbour_code_to_surface_area",
    "qu_brats_region",
    "qu_brats_report",
    "rescale_uncertainty",
    "roc_auc_ovr",
    "segmentation_report",
    "write_classification_report",
]

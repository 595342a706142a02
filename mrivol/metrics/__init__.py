"""Segmentation, uncertainty and classification metrics (pure scoring, no training stack).

* :mod:`~mrivol.metrics.brats_regions`: ET / TC / WT masks for the BraTS 2021 and 2023 labels.
* :mod:`~mrivol.metrics.surface_distance`: DeepMind area-weighted surface distances (HD95).
* :mod:`~mrivol.metrics.segmentation`: per-case Dice, HD95, sensitivity, specificity, volumes.
* :mod:`~mrivol.metrics.brats_hd95_metric`: the BraTS HD95 as a MONAI cumulative metric.
* :mod:`~mrivol.metrics.lesionwise`, :mod:`~mrivol.metrics.lesionwise_rules`: BraTS 2023 / 2024
  lesion-wise Dice and HD95, presets per challenge; :mod:`~mrivol.metrics.lesionwise_metric`:
  the same on region channels, and as a MONAI metric for validation;
  :mod:`~mrivol.metrics.brats2025`: the official BraTS 2025 evaluator, per case.
* :mod:`~mrivol.metrics.qu_brats`: the QU-BraTS uncertainty score.
* :mod:`~mrivol.metrics.uncertainty`: entropy and mutual information of MC samples.
* :mod:`~mrivol.metrics.classification`: accuracy, per-class scores, ROC-AUC, reports.
* :mod:`~mrivol.metrics.balanced_accuracy`: balanced accuracy as an ignite metric.

Importing the package loads neither torch's training stack nor MLflow: public names load
their module on first use (:mod:`mrivol.lazy`).
"""

from __future__ import annotations

from mrivol.lazy import lazy_exports

_EXPORTS = {
    "LESIONWISE_PRESETS": "lesionwise_rules",
    "LesionwiseRegion": "lesionwise_rules",
    "LesionwiseRules": "lesionwise_rules",
    "lesionwise_preset": "lesionwise_rules",
    "LesionScore": "lesionwise",
    "LesionwiseResult": "lesionwise",
    "lesionwise_region": "lesionwise",
    "lesionwise_report": "lesionwise",
    "LesionwiseMetric": "lesionwise_metric",
    "BRATS2025_CONFIGS": "brats2025",
    "evaluate_2025": "brats2025",
    "evaluate_2025_case": "brats2025",
    "channel_rules": "lesionwise_metric",
    "lesionwise_channels": "lesionwise_metric",
    "BalancedAccuracy": "balanced_accuracy",
    "BratsHD95Metric": "brats_hd95_metric",
    "BRATS2021_MAX_HD95": "brats_regions",
    "BRATS2023_MAX_HD95": "brats_regions",
    "BRATS_CONVENTIONS": "brats_regions",
    "BRATS_REGIONS": "brats_regions",
    "brats_region_masks": "brats_regions",
    "default_max_hd95": "brats_regions",
    "ClassificationReport": "classification",
    "classification_report": "classification",
    "confusion_matrix": "classification",
    "roc_auc_ovr": "classification",
    "write_classification_report": "classification",
    "DEFAULT_QU_THRESHOLDS": "qu_brats",
    "QUBraTSResult": "qu_brats",
    "qu_brats_region": "qu_brats",
    "qu_brats_report": "qu_brats",
    "rescale_uncertainty": "qu_brats",
    "binary_segmentation_metrics": "segmentation",
    "dice_score": "segmentation",
    "hd95_mm": "segmentation",
    "segmentation_report": "segmentation",
    "SurfaceDistances": "surface_distance",
    "compute_robust_hausdorff": "surface_distance",
    "compute_surface_distances": "surface_distance",
    "neighbour_code_to_surface_area": "surface_distance",
    "LN2": "uncertainty",
    "binary_entropy": "uncertainty",
    "predictive_uncertainty": "uncertainty",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

"""Evaluation: score runs and prediction folders, reports and pictures.

* :mod:`~mrivol.evaluation.evaluate`: ``mrivol evaluate`` of a run on its validation fold.
* :mod:`~mrivol.evaluation.seg_evaluation`: ``mrivol evaluate-seg`` of a prediction folder.
* :mod:`~mrivol.evaluation.validation_report`: per-region metrics and pictures each validation.
* :mod:`~mrivol.evaluation.classification_report`: per-class metrics, Grad-CAM++ each validation.
* :mod:`~mrivol.evaluation.gradcam`, :mod:`~mrivol.evaluation.overlay`,
  :mod:`~mrivol.evaluation.report_plots`: Grad-CAM++ maps, overlays, box plots.
"""

from __future__ import annotations

from mrivol.evaluation.classification_report import ClassificationReportHandler
from mrivol.evaluation.evaluate import evaluate
from mrivol.evaluation.gradcam import gradcam_pp, save_gradcam_png
from mrivol.evaluation.overlay import axial_snapshot, save_overlay_png
from mrivol.evaluation.report_plots import (
    pick_best_median_worst,
    save_case_figures,
    save_metric_boxplot,
    save_uncertainty_png,
)
from mrivol.evaluation.seg_evaluation import (
    GridMismatchError,
    SegEvaluation,
    check_same_grid,
    evaluate_segmentations,
    find_ground_truth,
    summarise,
)
from mrivol.evaluation.validation_report import ValidationReport

__all__ = [
    "ClassificationReportHandler",
    "GridMismatchError",
    "SegEvaluation",
    "ValidationReport",
    "axial_snapshot",
    "check_same_grid",
    "evaluate",
    "evaluate_segmentations",
    "find_ground_truth",
    "gradcam_pp",
    "pick_best_median_worst",
    "save_case_figures",
    "save_gradcam_png",
    "save_metric_boxplot",
    "save_overlay_png",
    "save_uncertainty_png",
    "summarise",
]

"""Cross-validation: every fold as a child run, OOF predictions, post-processing, network study.

* :mod:`~mrivol.crossval.cross_validate`: ``mrivol cv``, the steps of one cross-validation.
* :mod:`~mrivol.crossval.parent_run`: the MLflow parent run, found again by the same command.
* :mod:`~mrivol.crossval.fold_training`: one fold trained (or resumed) as a child run.
* :mod:`~mrivol.crossval.oof`: out-of-fold predictions of each fold's best model.
* :mod:`~mrivol.crossval.cv_metrics`, :mod:`~mrivol.crossval.pooling`: pooled OOF metrics,
  their spread over folds, logging to the parent.
* :mod:`~mrivol.crossval.postprocessing_search`: post-processing tuned on the OOF predictions.
* :mod:`~mrivol.crossval.time_budget`: the same wall time per fold for every network.
* :mod:`~mrivol.crossval.study`: ``mrivol study``, networks cross-validated on the same folds.

Public names load their module on first use (:mod:`mrivol.lazy`), so a bundle config can name
``mrivol.crossval.TimeBudget`` without importing the whole stage.
"""

from __future__ import annotations

from mrivol.lazy import lazy_exports

_EXPORTS = {
    "CvResult": "cross_validate",
    "cross_validate": "cross_validate",
    "format_cv_result": "cross_validate",
    "manifest_folds": "cross_validate",
    "CvParent": "parent_run",
    "open_cv_parent": "parent_run",
    "train_fold": "fold_training",
    "OutputCollector": "oof",
    "CvScores": "cv_metrics",
    "OofScorer": "postprocessing_search",
    "PostprocessingSearch": "postprocessing_search",
    "search_postprocessing": "postprocessing_search",
    "TimeBudget": "time_budget",
    "StudyResult": "study",
    "run_study": "study",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

"""Preprocessing: one case (load, steps, QC, save) and the parallel, cached runner.

* :mod:`~mrivol.preprocessing.case`: load a case safely, run the steps, save the outputs.
* :mod:`~mrivol.preprocessing.qc`: quality scores against the phantom truth, QC pictures.
* :mod:`~mrivol.preprocessing.runner`: ``mrivol preprocess`` over a manifest (cached, resumable).

Importing the package loads neither torch's training stack (ignite, MONAI engines) nor MLflow:
public names load their module on first use (:mod:`mrivol.lazy`).
"""

from __future__ import annotations

from mrivol.lazy import lazy_exports

_EXPORTS = {
    "CaseError": "case",
    "STEP_ORDER": "case",
    "build_step": "case",
    "load_case": "case",
    "run_case": "case",
    "save_case": "case",
    "cov": "qc",
    "load_truth": "qc",
    "save_qc_png": "qc",
    "step_scores": "qc",
    "world_points": "qc",
    "PREPROCESS_VERSION": "runner",
    "PreprocessResult": "runner",
    "default_config_path": "runner",
    "load_preprocess_config": "runner",
    "preprocess_manifest": "runner",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

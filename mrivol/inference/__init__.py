"""Inference: a trained run on new scans, MC-dropout uncertainty, outputs on the input grid.

* :mod:`~mrivol.inference.run_ref`: a run id or checkpoint and the settings it was trained with.
* :mod:`~mrivol.inference.infer`: ``mrivol infer`` (label maps, probabilities, volumes).
* :mod:`~mrivol.inference.classify`: ``mrivol infer`` of a classifier (ad_cls): probabilities,
  Grad-CAM++ maps on each scan's grid.
* :mod:`~mrivol.inference.mc_dropout`: dropout on at test time, everything else in eval mode.
* :mod:`~mrivol.inference.uncertainty`: batched MC-dropout predictor.
"""

from __future__ import annotations

from mrivol.inference.classify import cam_to_input_grid, classify, scan_datalist
from mrivol.inference.infer import (
    infer,
    input_datalist,
    label_convention,
    run_inference,
    volume_report,
)
from mrivol.inference.mc_dropout import (
    DROPOUT_TYPES,
    McDropoutHandle,
    enable_mc_dropout,
    mc_dropout,
    mc_predict,
)
from mrivol.inference.run_ref import RunRef, resolve_run
from mrivol.inference.uncertainty import McDropoutPredictor, deterministic_prefix, first_dropout

__all__ = [
    "DROPOUT_TYPES",
    "McDropoutHandle",
    "McDropoutPredictor",
    "RunRef",
    "cam_to_input_grid",
    "classify",
    "deterministic_prefix",
    "enable_mc_dropout",
    "first_dropout",
    "infer",
    "input_datalist",
    "label_convention",
    "mc_dropout",
    "mc_predict",
    "resolve_run",
    "run_inference",
    "scan_datalist",
    "volume_report",
]

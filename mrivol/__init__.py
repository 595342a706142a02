"""mrivol: a MONAI-based 3D brain-MRI pipeline, one package per workflow stage.

Pipeline order (a package imports only the ones before it): :mod:`mrivol.data` (manifests,
layouts, splits) -> :mod:`mrivol.synth` (phantoms) -> :mod:`mrivol.transforms` ->
:mod:`mrivol.preprocessing` -> :mod:`mrivol.planning` -> :mod:`mrivol.networks` /
:mod:`mrivol.losses` -> :mod:`mrivol.training` -> :mod:`mrivol.inference` ->
:mod:`mrivol.evaluation`. The libraries :mod:`mrivol.io`, :mod:`mrivol.paths` and
:mod:`mrivol.metrics` come first (anything may use them); :mod:`mrivol.tracking` (MLflow)
comes just before training.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]

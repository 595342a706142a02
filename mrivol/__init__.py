"""mrivol: a MONAI-based 3D brain-MRI pipeline.

Subpackages follow the data flow: :mod:`mrivol.data` (phantoms, manifests, splits),
:mod:`mrivol.transforms` (preprocessing as MONAI dictionary transforms),
:mod:`mrivol.networks`, :mod:`mrivol.metrics` and :mod:`mrivol.engine` (running bundles).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]

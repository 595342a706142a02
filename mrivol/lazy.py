"""Package attributes imported on first use (PEP 562), so importing a package stays light.

``import monai`` loads every MONAI submodule, ``monai.handlers`` included, and with it ignite
and MLflow (MONAI 1.6.1's eager ``load_submodules``). Packages that must not pay for that at
import time (``mrivol.preprocessing``, ``mrivol.metrics``) name their public attributes here
and load a module only when one of its names is used.

Examples:
    >>> exports = {"dice_score": "segmentation"}
    >>> __getattr__, __dir__ = lazy_exports("mrivol.metrics", exports)
    >>> __getattr__("dice_score").__module__
    'mrivol.metrics.segmentation'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` serving ``name -> <package>.<module>.name``.

    Args:
        package: the package's ``__name__``.
        exports: public name -> submodule (relative to ``package``) that defines it.

    Returns:
        ``(__getattr__, __dir__)`` for the package's ``__init__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__

"""Where things live: the bundles, and the workspace that holds caches, runs and the MLflow store.

Bundles come from, first match wins: ``$MRIVOL_ROOT/bundles``; the checkout the current
directory is in (a folder with ``bundles/`` and ``pyproject.toml``, or one of its parents); the
checkout this package was installed from (editable install); the copy inside the installed
package (``pip install .``: ``mrivol/bundles``, package data).

The workspace (``.cache/``, ``runs/``, ``mlruns/``) is ``MRIVOL_ROOT`` when set, else that
checkout, else the current directory; ``MRIVOL_CACHE`` and ``MRIVOL_RUNS`` move the cache and
the runs on their own.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "available_bundles",
    "bundle_dir",
    "bundles_root",
    "cache_dir",
    "checkout_root",
    "project_root",
    "runs_dir",
    "shared_dir",
]

_PACKAGED_BUNDLES = Path(__file__).resolve().parent / "bundles"


def checkout_root() -> Path | None:
    """The mrivol checkout in use (``MRIVOL_ROOT``, the current directory's or the package's).

    Returns:
        The folder holding ``bundles/`` and ``pyproject.toml``, or ``None`` outside a checkout
        (an installed package run from elsewhere).
    """
    if env := os.environ.get("MRIVOL_ROOT"):
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents, Path(__file__).resolve().parents[1]):
        if (candidate / "bundles").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    return None


def project_root() -> Path:
    """The workspace: ``.cache/``, ``runs/`` and ``mlruns/`` live here.

    ``MRIVOL_ROOT``, else the checkout (:func:`checkout_root`), else the current directory.
    """
    return checkout_root() or Path.cwd().resolve()


def bundles_root() -> Path:
    """The folder holding the bundles (see the module docstring for the search order).

    Raises:
        FileNotFoundError: ``MRIVOL_ROOT`` is set but has no ``bundles/``, or no bundles were
            found at all (the message says what to set).
    """
    root = checkout_root()
    if root is not None:
        if not (root / "bundles").is_dir():
            raise FileNotFoundError(
                f"MRIVOL_ROOT={root} has no bundles/ folder: point it at an mrivol checkout "
                "(or unset it to use the bundles installed with the package)"
            )
        return root / "bundles"
    if _PACKAGED_BUNDLES.is_dir():
        return _PACKAGED_BUNDLES
    raise FileNotFoundError(
        "cannot find the mrivol bundles: run from inside the checkout, set MRIVOL_ROOT, or "
        "install the package with `pip install .` (it ships them)"
    )


def available_bundles() -> list[str]:
    """Names of the bundles (folders with ``configs/metadata.json``)."""
    return sorted(p.parent.parent.name for p in bundles_root().glob("*/configs/metadata.json"))


def bundle_dir(name: str) -> Path:
    """Return the folder of bundle ``name``.

    Raises:
        FileNotFoundError: the bundle does not exist; the message lists those that do.
    """
    path = bundles_root() / name
    if not (path / "configs" / "metadata.json").is_file():
        raise FileNotFoundError(
            f"no bundle {name!r} at {path} (expected configs/metadata.json); "
            f"available bundles: {', '.join(available_bundles()) or 'none'}"
        )
    return path


def shared_dir() -> Path:
    """``bundles/shared``: the configs several bundles merge (see ``metadata.json``)."""
    return bundles_root() / "shared"


def cache_dir() -> Path:
    """Cache for generated data (``MRIVOL_CACHE`` or ``<workspace>/.cache``)."""
    return Path(os.environ.get("MRIVOL_CACHE", project_root() / ".cache")).resolve()


def runs_dir() -> Path:
    """Where run outputs (checkpoints, reports) go (``MRIVOL_RUNS`` or ``<workspace>/runs``)."""
    return Path(os.environ.get("MRIVOL_RUNS", project_root() / "runs")).resolve()

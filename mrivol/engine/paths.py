"""Where things live: the project root, bundles, caches and runs."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["project_root", "bundle_dir", "available_bundles", "cache_dir", "runs_dir"]


def project_root() -> Path:
    """Return the mrivol checkout that holds ``bundles/``.

    ``MRIVOL_ROOT`` wins; otherwise the current directory or one of its parents, and finally the
    checkout this package was installed from (editable install).

    Raises:
        FileNotFoundError: no directory with a ``bundles/`` folder was found.
    """
    if env := os.environ.get("MRIVOL_ROOT"):
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents, Path(__file__).resolve().parents[2]):
        if (candidate / "bundles").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise FileNotFoundError(
        "cannot find the mrivol project root (a directory with bundles/ and pyproject.toml): "
        "run from inside the checkout or set MRIVOL_ROOT"
    )


def available_bundles() -> list[str]:
    """Names of the bundles under ``<root>/bundles`` (those with ``configs/metadata.json``)."""
    root = project_root() / "bundles"
    return sorted(p.parent.parent.name for p in root.glob("*/configs/metadata.json"))


def bundle_dir(name: str) -> Path:
    """Return ``<root>/bundles/<name>``.

    Raises:
        FileNotFoundError: the bundle does not exist; the message lists those that do.
    """
    path = project_root() / "bundles" / name
    if not (path / "configs" / "metadata.json").is_file():
        raise FileNotFoundError(
            f"no bundle {name!r} at {path} (expected configs/metadata.json); "
            f"available bundles: {', '.join(available_bundles()) or 'none'}"
        )
    return path


def cache_dir() -> Path:
    """Cache for generated data (``MRIVOL_CACHE`` or ``<root>/.cache``)."""
    return Path(os.environ.get("MRIVOL_CACHE", project_root() / ".cache")).resolve()


def runs_dir() -> Path:
    """Where run outputs (checkpoints, reports) go (``MRIVOL_RUNS`` or ``<root>/runs``)."""
    return Path(os.environ.get("MRIVOL_RUNS", project_root() / "runs")).resolve()

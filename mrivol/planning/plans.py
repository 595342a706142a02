"""Plans JSON: plan a manifest's data (``mrivol plan``), write and read the plans file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mrivol.io import write_text_atomic

__all__ = ["plan_manifest", "read_plans", "write_plans"]


def plan_manifest(
    manifest: str | Path,
    out: str | Path,
    *,
    gpu_memory_gb: float = 8.0,
    num_classes: int | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Fingerprint every case of ``manifest`` and write the derived plans JSON to ``out``.

    The fingerprint (spacings, shapes after cropping to non-zero, foreground intensity
    statistics) and the rules are :func:`mrivol.networks.compute_fingerprint` and
    :func:`mrivol.networks.plan_from_fingerprint`; the plan records the manifest's hash.

    Returns:
        The plans dict that was written.
    """
    import pandas as pd

    from mrivol.data import infer_layout, manifest_hash, read_manifest
    from mrivol.planning.fingerprint import compute_fingerprint
    from mrivol.planning.planner import plan_from_fingerprint

    df = read_manifest(manifest)
    layout = infer_layout(tuple(pd.read_csv(manifest, nrows=0).columns), name=str(manifest))
    cases = df.to_dict("records")
    fingerprint = compute_fingerprint(
        cases, image_keys=list(layout.images), label_key=layout.label, num_workers=workers
    )
    plans = plan_from_fingerprint(fingerprint, gpu_memory_gb=gpu_memory_gb, num_classes=num_classes)
    plans["manifest"] = str(manifest)
    plans["manifest_hash"] = manifest_hash(manifest)
    write_plans(plans, out)
    return plans


def write_plans(plans: dict[str, Any], path: str | Path) -> Path:
    """Write ``plans`` as indented JSON atomically (temporary file, then ``os.replace``).

    Args:
        plans: the plans dict.
        path: destination file; parent folders are created.

    Returns:
        The destination path.
    """
    return write_text_atomic(json.dumps(plans, indent=2) + "\n", path)


def read_plans(path: str | Path) -> dict[str, Any]:
    """Read a plans JSON written by :func:`write_plans`.

    Raises:
        FileNotFoundError: if the file does not exist (the message says how to create it).
        ValueError: if it is not a plans file (no ``strides`` / ``kernel_sizes`` / ``filters``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"plans file {path} not found; create it with `mrivol plan`.")
    plans = json.loads(path.read_text())
    missing = [k for k in ("strides", "kernel_sizes", "filters", "patch_size") if k not in plans]
    if missing:
        raise ValueError(f"plans file {path} lacks {missing}; regenerate it with `mrivol plan`.")
    return plans

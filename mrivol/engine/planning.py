"""``mrivol plan``: an nnU-Net v2-style plan (spacing, patch, topology) for a manifest's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plan_manifest"]


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
    from mrivol.networks import compute_fingerprint, plan_from_fingerprint, write_plans

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

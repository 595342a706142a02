"""The embedded default data set: phantoms synthesised once per bundle and profile, cached."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mrivol.paths import cache_dir

__all__ = ["default_manifest", "ensure_phantom_manifest", "phantom_dir"]

FOLDS = 5  # subject-level folds of the default data set


def phantom_dir(bundle: str, profile: str) -> Path:
    """``<cache>/phantoms/<bundle>-<profile>``: where a bundle's default phantom set lives."""
    return cache_dir() / "phantoms" / f"{bundle}-{profile}"


def default_manifest(bundle: str, profile: str) -> str:
    """The manifest path of a bundle's default phantom set (``mrivol data`` creates it).

    The bundles' ``manifest`` default (``bundles/shared/base.yaml``); honours ``MRIVOL_CACHE``.
    """
    return str(phantom_dir(bundle, profile) / "manifest.csv")


def ensure_phantom_manifest(
    bundle: str,
    profile: str,
    synth: Mapping[str, Any],
    *,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Return the manifest of the bundle's phantom set, synthesising it on first use.

    The set lives in ``<cache>/phantoms/<bundle>-<profile>/`` and is regenerated only when its
    parameters (``synth`` from the profile config, and the seed) change. Generation is resumable:
    finished cases are kept.

    Args:
        bundle: bundle name (``brats_seg``).
        profile: device profile name; each profile has its own set.
        synth: BraTS phantoms ``{"cases": int, "shape": [x, y, z], "spacing": [sx, sy, sz]}``,
            or ``{"kind": "ad", "subjects": ..., ...}`` for :func:`ensure_ad_manifest`.
        seed: phantom seed (also the fold-assignment seed).
        workers: generator processes (default: all cores).

    Returns:
        Path of ``manifest.csv`` (paths relative to its own folder).
    """
    from mrivol.data import build_manifest
    from mrivol.synth import generate_brats_phantoms

    if synth.get("kind", "brats") == "ad":  # Alzheimer-like T1 phantoms (classification)
        from mrivol.synth.ad_phantoms import ensure_ad_manifest

        return ensure_ad_manifest(phantom_dir(bundle, profile), synth, seed=seed)
    params = {
        "cases": int(synth["cases"]),
        "shape": [int(s) for s in synth["shape"]],
        "spacing": [float(s) for s in synth["spacing"]],
        "seed": int(seed),
    }
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    root = phantom_dir(bundle, profile)
    manifest = root / "manifest.csv"
    stamp = root / "params.json"
    if manifest.is_file() and stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
        return manifest
    if stamp.is_file() and json.loads(stamp.read_text()).get("key") != key:
        print(f"phantom parameters changed: regenerating {root}", flush=True)
        shutil.rmtree(root)
    print(f"synthesising {params['cases']} phantom cases into {root} (once; cached)", flush=True)
    cases = root / "cases"
    generate_brats_phantoms(
        cases,
        n_cases=params["cases"],
        seed=params["seed"],
        shape=tuple(params["shape"]),
        spacing=tuple(params["spacing"]),
        workers=workers or os.cpu_count() or 1,
        progress=True,
    )
    build_manifest(layout="brats2021", root=cases, out=manifest, folds=FOLDS, seed=params["seed"])
    stamp.write_text(json.dumps({"key": key, **params}, indent=2))
    return manifest

"""Alzheimer's-like T1 phantoms: MNI152 anatomy with class-dependent, progressing atrophy.

Each subject gets one diagnosis (CN, MCI or AD, in a chosen ratio), an anatomy of its own
(a smooth random deformation, a global head scale and a small pose) and ``sessions`` scans
whose atrophy grows with time. Atrophy follows the pattern of the AD literature (Frisoni et al.,
"The clinical use of structural MRI in Alzheimer disease", Nat. Rev. Neurol. 6, 2010):

* **ventricle enlargement**: the maps are sampled through a smooth radial displacement that
  pushes tissue away from the lateral ventricles, so the CSF spaces grow;
* **medial-temporal (hippocampal) atrophy**: grey matter in two Gaussian regions around the
  hippocampi (MNI x = +-26, y = -22, z = -14 mm) turns into CSF;
* **cortical thinning**: a smooth, subject-specific fraction of cortical grey matter turns
  into CSF everywhere.

Severity is 0 (CN), ~0.45 (MCI) or ~1 (AD) plus subject noise, and grows by
``progression`` per session for MCI and AD (by a tenth of that for CN: normal ageing).
The head is the full-head model of :mod:`mrivol.synth.mni` (scalp, skull, CSF shell), rendered
with T1 contrast, a smooth bias field and Rician noise on the 2 mm MNI grid; the pose keeps
the scans within a few mm and degrees of MNI space, so an affine registration (or none, on the
cpu profile) aligns them. The manifest uses the ``t1-table`` layout.

Examples:
    >>> manifest = generate_ad_phantoms("ad", subjects=12, sessions=2)  # doctest: +SKIP
    >>> read_manifest(manifest)["diagnosis"].value_counts()  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from mrivol.data.t1_table import T1_CLASSES
from mrivol.synth.mni import load_head_model, tissue_fraction_maps
from mrivol.synth.phantom_contrast import bias_field, rician_noise

__all__ = [
    "AD_SEVERITY",
    "add_synth_ad_arguments",
    "ensure_ad_manifest",
    "generate_ad_phantoms",
    "main_synth_ad",
    "parse_class_ratio",
    "render_ad_scan",
]

#: Mean baseline atrophy severity of each class (0 none, 1 typical AD).
AD_SEVERITY: dict[str, float] = {"CN": 0.0, "MCI": 0.45, "AD": 1.0}
_T1 = {"background": 0.0, "csf": 0.30, "gm": 0.68, "wm": 1.0, "skull": 0.07, "scalp": 1.05}
_VENTRICLE_MM = np.array([0.0, -12.0, 16.0])  # centre of the lateral ventricles (MNI, mm)
_HIPPOCAMPI_MM = np.array([[26.0, -22.0, -14.0], [-26.0, -22.0, -14.0]])


def parse_class_ratio(text: str | Sequence[float]) -> tuple[float, float, float]:
    """Parse ``"CN:MCI:AD"`` (e.g. ``"6:3:1"``) into three non-negative weights summing to 1.

    Raises:
        ValueError: not three non-negative numbers with a positive sum.
    """
    parts = text.split(":") if isinstance(text, str) else list(text)
    try:
        w = np.array([float(p) for p in parts], dtype=float)
    except ValueError as err:
        raise ValueError(f"class ratio {text!r}: use three numbers CN:MCI:AD, e.g. 6:3:1") from err
    if w.shape != (3,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"class ratio {text!r}: use three non-negative numbers CN:MCI:AD")
    return tuple(float(x) for x in w / w.sum())


def _class_counts(subjects: int, ratio: Sequence[float]) -> list[int]:
    """Largest-remainder apportionment of ``subjects`` to the classes."""
    raw = np.asarray(ratio) * subjects
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: subjects - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _smooth_field(shape: tuple[int, ...], rng: np.random.Generator, sigma_vox: float) -> np.ndarray:
    """Unit-std smooth random field on a coarse grid, upsampled (cheap)."""
    coarse = tuple(max(3, int(s / sigma_vox)) for s in shape)
    small = ndi.gaussian_filter(rng.standard_normal(coarse), 1.0)
    field = ndi.zoom(small, [s / c for s, c in zip(shape, coarse, strict=True)], order=1)
    field = field[tuple(slice(0, s) for s in shape)]
    return ((field - field.mean()) / (field.std() + 1e-6)).astype(np.float32)


def render_ad_scan(
    *,
    severity: float,
    anatomy_seed: int,
    scan_seed: int,
    noise_sigma: float = 0.03,
    pose_deg: float = 3.0,
    pose_mm: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one full-head T1 scan on the 2 mm MNI grid.

    Args:
        severity: atrophy severity (0 none, 1 typical AD; larger is allowed).
        anatomy_seed: seed of the subject's anatomy (deformation, scale, pose, thinning map):
            every session of a subject shares it.
        scan_seed: seed of this scan's bias field and noise.
        noise_sigma: Rician noise level relative to white matter.
        pose_deg: maximum rotation about each axis (degrees).
        pose_mm: maximum translation along each axis (mm).

    Returns:
        ``(image, affine)``: float32 (X, Y, Z) T1 image and its RAS affine (the MNI affine).

    Examples:
        >>> img, aff = render_ad_scan(severity=1.0, anatomy_seed=0, scan_seed=1)
        >>> img.shape
        (99, 117, 110)
    """
    head = load_head_model(resolution=2)
    tissues = head.tissues
    shape = tissues.gm.shape
    affine = tissues.affine
    rng = np.random.default_rng(anatomy_seed)
    vox = np.stack(np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij"))
    world = np.einsum("ij,j...->i...", affine[:3, :3], vox) + affine[:3, 3, None, None, None]
    # subject anatomy: global scale, small rotation and shift, smooth 2 mm-std deformation
    scale = rng.uniform(0.95, 1.05)
    angles = np.deg2rad(rng.uniform(-pose_deg, pose_deg, 3))
    shift = rng.uniform(-pose_mm, pose_mm, 3)
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rot = (
        np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    )
    src = np.einsum("ij,j...->i...", rot.T / scale, world - shift[:, None, None, None])
    src += np.stack([2.0 * _smooth_field(shape, rng, 10.0) for _ in range(3)])
    thinning_map = 0.5 + 0.5 * np.clip(_smooth_field(shape, rng, 12.0) * 0.5 + 0.5, 0, 1)
    # ventricle enlargement: sample closer to the ventricle centre (radial, Gaussian falloff)
    rel = src - _VENTRICLE_MM[:, None, None, None]
    r2 = (rel**2).sum(0)
    src = _VENTRICLE_MM[:, None, None, None] + rel * (
        1.0 - 0.35 * severity * np.exp(-r2 / (2 * 22.0**2))
    )
    inv = np.linalg.inv(affine)
    coords = np.einsum("ij,j...->i...", inv[:3, :3], src) + inv[:3, 3, None, None, None]
    gm = ndi.map_coordinates(tissues.gm, coords, order=1, mode="nearest")
    wm = ndi.map_coordinates(tissues.wm, coords, order=1, mode="nearest")
    distance = ndi.map_coordinates(head.distance, coords, order=1, mode="nearest")
    # medial-temporal atrophy and cortical thinning: grey matter becomes CSF
    loss = 0.30 * severity * thinning_map
    for centre in _HIPPOCAMPI_MM:
        d2 = ((world - centre[:, None, None, None]) ** 2).sum(0)
        loss = loss + 0.8 * severity * np.exp(-d2 / (2 * 8.0**2))
    gm = gm * np.clip(1.0 - loss, 0.0, 1.0)
    maps = tissue_fraction_maps(gm, wm, distance, ramp_mm=2.0)
    scan_rng = np.random.default_rng(scan_seed)
    contrast = {k: v * (1 + 0.04 * scan_rng.standard_normal()) for k, v in _T1.items()}
    image = sum(maps[k] * np.float32(contrast[k]) for k in maps)
    image = image * bias_field(shape, rng=scan_rng)
    image = rician_noise(image.astype(np.float32), sigma=noise_sigma, rng=scan_rng)
    return (image * 1000.0).astype(np.float32), affine


def _render_to_file(job: dict[str, Any]) -> str:
    image, affine = render_ad_scan(
        severity=job["severity"], anatomy_seed=job["anatomy_seed"], scan_seed=job["scan_seed"]
    )
    path = Path(job["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.nii.gz")
    nib.save(nib.Nifti1Image(image, affine), tmp)
    os.replace(tmp, path)
    return str(path)


def generate_ad_phantoms(
    out: str | Path,
    *,
    subjects: int,
    sessions: int = 1,
    class_ratio: str | Sequence[float] = "1:1:1",
    folds: int = 5,
    seed: int = 0,
    progression: float = 0.12,
    workers: int = 1,
) -> Path:
    """Write AD-like phantom scans and their ``t1-table`` manifest (stratified subject folds).

    Resumable: existing scan files are kept. Files: ``<out>/<subject>/<session>/t1.nii.gz``,
    ``<out>/table.csv`` (the scan table) and ``<out>/manifest.csv``.

    Args:
        out: output directory.
        subjects: number of subjects (>= ``folds``).
        sessions: scans per subject, one per session (``ses-01`` ...), atrophy progressing.
        class_ratio: ``"CN:MCI:AD"`` weights, e.g. ``"6:3:1"``.
        folds: subject-level folds, stratified by diagnosis.
        seed: seed of everything (anatomy, severities, noise, folds).
        progression: severity added per session for MCI and AD.
        workers: rendering processes.

    Returns:
        Path of the manifest CSV.

    Raises:
        ValueError: for a bad ratio, ``subjects < folds`` or ``sessions < 1``.
    """
    from mrivol.data.manifest import build_manifest

    ratio = parse_class_ratio(class_ratio)
    if sessions < 1 or subjects < max(folds, 1):
        raise ValueError(
            f"AD phantoms: need sessions >= 1 and subjects >= folds, got subjects={subjects}, "
            f"sessions={sessions}, folds={folds}"
        )
    out = Path(out)
    rng = np.random.default_rng(seed)
    labels = [
        c for c, n in zip(T1_CLASSES, _class_counts(subjects, ratio), strict=True) for _ in range(n)
    ]
    labels = rng.permutation(labels).tolist()
    rows, jobs = [], []
    for i, diagnosis in enumerate(labels):
        subject = f"sub-{i:04d}"
        base = max(
            0.0,
            AD_SEVERITY[diagnosis] + (0.12 if diagnosis != "CN" else 0.05) * rng.standard_normal(),
        )
        rate = progression if diagnosis != "CN" else 0.1 * progression
        anatomy_seed = int(rng.integers(2**31))
        for s in range(sessions):
            session = f"ses-{s + 1:02d}"
            rel = f"{subject}/{session}/t1.nii.gz"
            rows.append({"subject": subject, "session": session, "t1": rel, "diagnosis": diagnosis})
            job = {
                "path": str(out / rel),
                "severity": base + rate * s * float(rng.uniform(0.7, 1.3)),
                "anatomy_seed": anatomy_seed,
                "scan_seed": int(rng.integers(2**31)),
            }
            if not Path(job["path"]).is_file():
                jobs.append(job)
    if jobs:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_render_to_file, jobs))
        else:
            for job in jobs:
                _render_to_file(job)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "table.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    manifest = out / "manifest.csv"
    build_manifest(layout="t1-table", root=out, out=manifest, folds=folds, seed=seed, table=table)
    return manifest


def ensure_ad_manifest(cache: str | Path, synth: Mapping[str, Any], *, seed: int = 0) -> Path:
    """The cached AD phantom set for a profile's ``synth`` section, generated on first use.

    Regenerated only when ``synth`` or ``seed`` change (a ``params.json`` stamp), like
    :func:`mrivol.synth.default_data.ensure_phantom_manifest` for BraTS phantoms.

    Args:
        cache: directory of the set (e.g. ``<cache>/phantoms/ad_cls-cpu``).
        synth: ``{"kind": "ad", "subjects": N, "sessions": K, "class_ratio": "1:1:1",
            "folds": 5}`` (``kind`` is ignored here).
        seed: generation and fold seed.

    Returns:
        Path of ``manifest.csv``.
    """
    params = {k: v for k, v in dict(synth).items() if k != "kind"} | {"seed": int(seed)}
    key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]
    root = Path(cache)
    stamp, manifest = root / "params.json", root / "manifest.csv"
    if manifest.is_file() and stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
        return manifest
    if root.exists():
        shutil.rmtree(root)
    print(f"synthesising AD phantoms {params} into {root} (once; cached)", flush=True)
    manifest = generate_ad_phantoms(
        root,
        subjects=int(params["subjects"]),
        sessions=int(params.get("sessions", 1)),
        class_ratio=params.get("class_ratio", "1:1:1"),
        folds=int(params.get("folds", 5)),
        seed=int(seed),
        workers=os.cpu_count() or 1,
    )
    stamp.write_text(json.dumps({"key": key, **params}, indent=2))
    return manifest


def add_synth_ad_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``mrivol synth ad`` (for the CLI's sub-parser)."""
    p.add_argument("--subjects", type=int, required=True, help="number of subjects")
    p.add_argument("--out", required=True, help="output directory (scans, table.csv, manifest.csv)")
    p.add_argument("--sessions", type=int, default=1, help="scans per subject (progressing)")
    p.add_argument("--class-ratio", default="1:1:1", help="CN:MCI:AD weights, e.g. 6:3:1")
    p.add_argument("--folds", type=int, default=5, help="stratified subject-level folds")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")


def main_synth_ad(args: argparse.Namespace) -> int:
    """Run ``mrivol synth ad``; prints the manifest and the class counts."""
    manifest = generate_ad_phantoms(
        args.out,
        subjects=args.subjects,
        sessions=args.sessions,
        class_ratio=args.class_ratio,
        folds=args.folds,
        seed=args.seed,
        workers=args.workers,
    )
    df = pd.read_csv(manifest, dtype=str)
    counts = df.drop_duplicates("subject_id")["diagnosis"].value_counts().to_dict()
    print(f"{len(df)} scans of {df['subject_id'].nunique()} subjects {counts} -> {manifest}")
    return 0

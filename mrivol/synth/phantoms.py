"""Synthetic BraTS 2021-like data set from the MNI152 template: the embedded default data.

Each case has the four BraTS modalities, the BraTS label map and, under ``truth/``, what the
preprocessing steps are scored against: brain mask, tissue map, the bias field of every
modality and the MNI->case pose. See :func:`render_brats_case` for the model.

Layout, for ``<case> = f"{prefix}_{i:05d}"``::

    out_dir/phantoms.json                      generation parameters
    out_dir/<case>/<case>_{t1,t1ce,t2,flair}.nii.gz    int16
    out_dir/<case>/<case>_seg.nii.gz           uint8 {0, 1 NET, 2 oedema, 4 ET}
    out_dir/<case>/truth/<case>_brainmask.nii.gz, <case>_tissue.nii.gz,
                         <case>_bias_<modality>.nii.gz, <case>_pose.json
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from mrivol.synth.mni import load_head_model
from mrivol.synth.phantom_contrast import MODALITIES, base_contrasts, vessel_map
from mrivol.synth.phantom_difficulty import threshold_difficulty
from mrivol.synth.phantom_render import GENERATOR_VERSION, BratsCase, render_brats_case

__all__ = [
    "SEG_LABELS",
    "TISSUE_LABELS",
    "case_files",
    "generate_brats_phantoms",
    "threshold_difficulty",
]

#: BraTS label values and their meaning.
SEG_LABELS = {0: "background", 1: "necrotic tumour core", 2: "peritumoural oedema", 4: "enhancing"}
#: Tissue truth label values and their meaning.
TISSUE_LABELS = {0: "background", 1: "CSF", 2: "GM", 3: "WM", 4: "skull", 5: "scalp", 6: "tumour"}

_PARAMS_FILE = "phantoms.json"
_SAME_PARAMS = ("generator_version", "seed", "shape", "spacing", "prefix")


def case_files(case_dir: str | Path, case: str | None = None) -> dict[str, Path]:
    """Every file a complete case directory holds, by role.

    Args:
        case_dir: ``out_dir/<case>``.
        case: the case name; default: the directory name.

    Returns:
        ``{"t1", "t1ce", "t2", "flair", "seg", "brainmask", "tissue", "bias_<mod>", "pose"}``
        mapped to paths (which may not exist).

    Examples:
        >>> case_files("/data/phantom_00000")["seg"].name
        'phantom_00000_seg.nii.gz'
    """
    case_dir = Path(case_dir)
    case, truth = case or case_dir.name, case_dir / "truth"
    files = {m: case_dir / f"{case}_{m}.nii.gz" for m in MODALITIES}
    files["seg"] = case_dir / f"{case}_seg.nii.gz"
    files["brainmask"] = truth / f"{case}_brainmask.nii.gz"
    files["tissue"] = truth / f"{case}_tissue.nii.gz"
    files.update({f"bias_{m}": truth / f"{case}_bias_{m}.nii.gz" for m in MODALITIES})
    files["pose"] = truth / f"{case}_pose.json"
    return files


def _is_complete(case_dir: Path) -> bool:
    return case_dir.is_dir() and all(p.is_file() for p in case_files(case_dir).values())


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    image.header.set_data_dtype(array.dtype)
    nib.save(image, path)


def _write_case(case: BratsCase, case_dir: Path, name: str) -> None:
    """Write ``case`` named ``name`` into the (new, empty) directory ``case_dir``."""
    files = case_files(case_dir, name)
    files["brainmask"].parent.mkdir(parents=True)
    for m in MODALITIES:
        _save(case.images[m], case.affine, files[m])
        _save(case.bias[m], case.affine, files[f"bias_{m}"])
    _save(case.seg, case.affine, files["seg"])
    _save(case.brain_mask, case.affine, files["brainmask"])
    _save(case.tissue, case.affine, files["tissue"])
    files["pose"].write_text(json.dumps({"case": name} | case.meta, indent=2))


def _generate_one(index: int, out_dir: Path, case: str, params: dict) -> Path:
    """Render and atomically write one case (temporary sibling, then ``os.replace``)."""
    final = out_dir / case
    tmp = out_dir / f".{case}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        rendered = render_brats_case(
            index, seed=params["seed"], shape=tuple(params["shape"]),
            spacing=tuple(params["spacing"]),
        )  # fmt: skip
        rendered.meta.update(
            seed=params["seed"], case_index=index, generator_version=GENERATOR_VERSION
        )
        _write_case(rendered, tmp, case)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _check_params(out_dir: Path, params: dict) -> None:
    """Refuse to resume into a directory made with other parameters; write phantoms.json."""
    path = out_dir / _PARAMS_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), params[k]) for k in _SAME_PARAMS if old.get(k) != params[k]}
        if diff:
            raise ValueError(
                f"{path} was written with other parameters {diff} (old, new): use a new output "
                "directory or the same parameters to resume"
            )
        params = params | {"n_cases": max(int(old.get("n_cases", 0)), params["n_cases"])}
    tmp = path.with_name(f".{_PARAMS_FILE}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(params, indent=2))
    os.replace(tmp, path)


def generate_brats_phantoms(
    out_dir: str | Path,
    *,
    n_cases: int,
    seed: int = 0,
    shape: tuple[int, int, int] = (240, 240, 155),
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    workers: int = 1,
    progress: bool = True,
    prefix: str = "phantom",
) -> list[Path]:
    """Generate (or complete) a synthetic BraTS 2021-like data set.

    Case ``i`` draws everything from ``np.random.default_rng([seed, i])``, so the voxels do not
    depend on ``workers`` or on which cases already exist. Every case is built in a temporary
    sibling directory and moved into place with ``os.replace``: an interrupted run never leaves a
    partial case, and a rerun skips complete cases (resumable).

    Args:
        out_dir: output directory (created).
        n_cases: number of cases (>= 1).
        seed: data set seed.
        shape: output grid (H, W, D), BraTS is 240x240x155.
        spacing: voxel size in mm; from 2 mm up the 2 mm MNI maps are used (fast tests).
        workers: processes; ``> 1`` uses a process pool.
        progress: show a tqdm progress bar over cases.
        prefix: case name prefix, ``f"{prefix}_{i:05d}"``.

    Returns:
        The case directories, sorted.

    Raises:
        ValueError: on bad arguments, or if ``out_dir`` holds a data set with other parameters.
        FileExistsError: if a case directory exists but is incomplete (not written by this
            generator: delete it).
        RuntimeError: if some cases failed (after finishing the others); the message lists them.

    Examples:
        >>> dirs = generate_brats_phantoms("/tmp/ph", n_cases=2, shape=(64, 64, 48),
        ...                                spacing=(3.0, 3.0, 3.0), progress=False)
        >>> [d.name for d in dirs]
        ['phantom_00000', 'phantom_00001']
    """
    if n_cases < 1 or workers < 1:
        raise ValueError(f"n_cases ({n_cases}) and workers ({workers}) must be >= 1")
    if len(shape) != 3 or len(spacing) != 3 or min(shape) < 8 or min(spacing) <= 0:
        raise ValueError(f"shape {shape} needs 3 sizes >= 8 and spacing {spacing} 3 values > 0")
    if not prefix or any(c in prefix for c in "/\\. "):
        raise ValueError(f"prefix {prefix!r} must be a non-empty name without '/', '.', spaces")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {
        "generator": "mrivol.synth.phantoms.generate_brats_phantoms",
        "generator_version": GENERATOR_VERSION,
        "n_cases": int(n_cases),
        "seed": int(seed),
        "shape": [int(s) for s in shape],
        "spacing": [float(s) for s in spacing],
        "prefix": prefix,
        "layout": "BraTS 2021",
        "modalities": list(MODALITIES),
        "seg_labels": {str(k): v for k, v in SEG_LABELS.items()},
        "tissue_labels": {str(k): v for k, v in TISSUE_LABELS.items()},
        "anatomy": "MNI152 ICBM 2009c (nilearn), full-head model mrivol.synth.mni",
        "base_contrasts": base_contrasts(),
    }
    _check_params(out_dir, params)
    cases = {i: f"{prefix}_{i:05d}" for i in range(n_cases)}
    todo = []
    for i, case in cases.items():
        case_dir = out_dir / case
        if _is_complete(case_dir):
            continue
        if case_dir.exists():
            raise FileExistsError(
                f"{case_dir} exists but is incomplete (missing files); it was not written by "
                "this generator: delete it and rerun"
            )
        todo.append(i)

    failures: dict[str, str] = {}
    with tqdm(total=n_cases, initial=n_cases - len(todo), disable=not progress, unit="case") as bar:
        if todo:  # build the per-process caches once (inherited by forked workers)
            resolution = 1 if min(spacing) < 2.0 else 2
            load_head_model(resolution=resolution)
            vessel_map(resolution=resolution)
        if workers == 1 or len(todo) <= 1:
            for i in todo:
                try:
                    _generate_one(i, out_dir, cases[i], params)
                except Exception as error:  # collected and re-raised below
                    failures[cases[i]] = f"{type(error).__name__}: {error}"
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
                futures = {
                    pool.submit(_generate_one, i, out_dir, cases[i], params): cases[i] for i in todo
                }
                for future in as_completed(futures):
                    try:
                        future.result()
                    except Exception as error:  # collected and re-raised below
                        failures[futures[future]] = f"{type(error).__name__}: {error}"
                    bar.update()
    if failures:
        lines = "\n".join(f"  {case}: {message}" for case, message in sorted(failures.items()))
        raise RuntimeError(f"{len(failures)} of {n_cases} phantom cases failed:\n{lines}")
    return sorted(out_dir / case for case in cases.values())

"""Check every file of a manifest and collect every problem (``mrivol manifest check FILE``).

The checks target the failure modes measured on this stack (``/work/shared/FACTS.md``): a
truncated ``.nii.gz`` raises only when read, one corrupted byte is caught only by the gzip CRC
at the end of the stream, and a qform/sform disagreement silently shifts an image between
nibabel (sform) and SimpleITK (qform). Files are opened with nibabel, one case at a time.

Examples:
    >>> problems = check_manifest("data_manifests/brats2021.csv", progress=True)  # doctest: +SKIP
    >>> print(format_problems(problems))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mrivol.data.manifest import Layout, ManifestError, read_manifest_table, resolve_dataset_root
from mrivol.data.nifti import affine_mismatch, load_nifti_verified
from mrivol.data.splits import find_subject_leakage
from mrivol.data.volume_checks import volume_problems

__all__ = ["Problem", "check_manifest", "format_problems"]


@dataclass(frozen=True)
class Problem:
    """One problem found in a manifest.

    Args:
        case_id: the case (comma-separated cases for a subject leak, ``""`` for the manifest).
        file: the file concerned (absolute path), or the manifest for row-level problems.
        problem: what is wrong, starting with the column name where there is one.
    """

    case_id: str
    file: str
    problem: str


def _check_case(
    row: dict, layout: Layout, root: str, manifest: str, *, atol_mm: float, atol_rot: float
) -> list[Problem]:
    """Open every file of one case and return its problems."""
    case = row["case_id"]
    problems: list[Problem] = []
    ref: tuple[str, tuple[int, ...], np.ndarray] | None = None
    for col in layout.path_columns:
        rel = row[col].strip()
        if not rel:
            problems.append(Problem(case, manifest, f"{col}: empty path"))
            continue
        path = os.path.normpath(os.path.join(root, rel))

        def add(msg: str, path: str = path, col: str = col) -> None:
            problems.append(Problem(case, path, f"{col}: {msg}"))

        if not os.path.isfile(path):
            add("file not found")
            continue
        try:
            img, data = load_nifti_verified(path)
        except EOFError as e:
            add(f"truncated file ({e}); re-copy or re-download it")
            continue
        except Exception as e:  # reported, not swallowed: any load failure is a problem
            add(f"cannot be read, corrupted? ({type(e).__name__}: {e})")
            continue
        if img.ndim != 3:  # reported once here, not again as a shape mismatch below
            add(f"{img.ndim}D image of shape {img.shape}; expected 3D")
        is_label = col == layout.label
        for msg in volume_problems(
            data, label=is_label, label_values=layout.label_values if is_label else None
        ):
            add(msg)
        del data
        hdr = img.header
        qform, qcode = hdr.get_qform(coded=True)
        sform, scode = hdr.get_sform(coded=True)
        if qcode and scode:
            diff = affine_mismatch(qform, sform, atol_mm=atol_mm, atol_rot=atol_rot)
            if diff:
                add(
                    f"qform and sform disagree ({diff}); nibabel uses the sform and SimpleITK "
                    "the qform: set both to the same affine"
                )
        if img.ndim != 3:
            continue
        if ref is None:
            ref = (col, img.shape, img.affine)
        elif img.shape != ref[1]:
            add(f"shape {img.shape} differs from {ref[0]} {ref[1]}")
        else:
            diff = affine_mismatch(img.affine, ref[2], atol_mm=atol_mm, atol_rot=atol_rot)
            if diff:
                add(f"affine differs from {ref[0]} ({diff}); co-register the modalities")
    return problems


def check_manifest(
    path: str | Path,
    *,
    progress: bool = False,
    atol_mm: float = 1e-3,
    atol_rot: float = 1e-4,
) -> list[Problem]:
    """Validate every row and every file of a manifest, collecting all problems.

    Per file: exists; loads (whole gzip stream read, so truncation and CRC errors show); 3D;
    :func:`~mrivol.data.volume_checks.volume_problems` (no NaN/Inf voxels, no constant
    modality, integer label values within the layout's set: {0, 1, 2, 4} for ``brats2021``);
    qform and sform agree when both are set. Per case: all images and the label share shape
    and affine (within ``atol_mm`` mm for origin and spacing, ``atol_rot`` for direction
    cosines). Per manifest: columns match a layout, ``dataset_root`` resolves, ``fold`` is an
    integer >= 0, ``case_id`` unique, no subject in two folds.

    Args:
        path: the manifest CSV.
        progress: show a tqdm progress bar over cases.
        atol_mm: tolerance on origin and voxel spacing, in mm.
        atol_rot: tolerance on direction cosines.

    Returns:
        The problems in manifest order; empty when the manifest is clean.
    """
    manifest = str(path)
    try:
        df, layout = read_manifest_table(path)
    except ManifestError as e:
        return [Problem("", manifest, str(e))]
    problems: list[Problem] = []
    for case, n in df["case_id"].value_counts().items():
        if n > 1:
            problems.append(Problem(case, manifest, f"case_id appears {n} times"))
    for col in ("case_id", "subject_id"):
        for i in df.index[df[col].str.strip() == ""]:
            problems.append(Problem(df.at[i, "case_id"], manifest, f"row {i + 2}: empty {col}"))
    folds = pd.to_numeric(df["fold"], errors="coerce")
    bad_fold = folds.isna() | (folds < 0) | (folds % 1 != 0)
    for i in df.index[bad_fold]:
        problems.append(
            Problem(
                df.at[i, "case_id"], manifest, f"fold {df.at[i, 'fold']!r} is not an integer >= 0"
            )
        )
    ok = df[~bad_fold].assign(fold=folds[~bad_fold])
    for subject, fs in find_subject_leakage(ok).items():
        cases = ", ".join(ok.loc[ok["subject_id"] == subject, "case_id"])
        problems.append(
            Problem(
                cases,
                manifest,
                f"subject {subject} appears in folds {fs}; "
                "all scans of a subject must share a fold",
            )
        )

    roots: dict[str, str | None] = {}
    for value in df["dataset_root"].unique():
        try:
            roots[value] = resolve_dataset_root(
                value, manifest_dir=Path(path).parent, name=manifest
            )
        except ManifestError as e:
            roots[value] = None
            problems.append(Problem("", manifest, str(e)))
    rows = df.to_dict("records")
    for row in tqdm(rows, desc=f"check {Path(path).name}", unit="case", disable=not progress):
        root = roots[row["dataset_root"]]
        if root is not None:
            problems += _check_case(row, layout, root, manifest, atol_mm=atol_mm, atol_rot=atol_rot)
    return problems


def format_problems(problems: list[Problem]) -> str:
    """Format problems as an aligned ``case | file | problem`` table with a summary line.

    File paths are shown relative to their common directory, named in the first line.

    Args:
        problems: from :func:`check_manifest`.

    Returns:
        The table, or ``"No problems found."``.
    """
    if not problems:
        return "No problems found."
    dirs = [os.path.dirname(p.file) for p in problems if os.path.isabs(p.file)]
    base = os.path.commonpath(dirs) if dirs else ""
    lines = [f"Paths relative to {base}"] if base not in ("", os.sep) else []
    shown = [
        os.path.relpath(p.file, base) if lines and os.path.isabs(p.file) else p.file
        for p in problems
    ]
    rows = [
        ("case", "file", "problem"),
        *zip([p.case_id for p in problems], shown, [p.problem for p in problems], strict=True),
    ]
    wc, wf = (max(len(r[i]) for r in rows) for i in (0, 1))
    rows.insert(1, ("-" * wc, "-" * wf, "-" * 7))
    lines += [f"{c:<{wc}}  {f:<{wf}}  {m}".rstrip() for c, f, m in rows]
    n_cases = len({p.case_id for p in problems if p.case_id})
    lines.append(f"{len(problems)} problem(s) in {n_cases} case(s).")
    return "\n".join(lines)

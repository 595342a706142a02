"""Data manifests: one CSV row per scan, the only way bundles find their data.

A manifest holds ``case_id, subject_id, session, fold, dataset_root`` followed by the image
columns of its :class:`Layout` (and its label column). Image paths are relative to
``dataset_root``, which is either an environment variable (``$BRATS2021_ROOT``) or a path
relative to the manifest's own directory, so a manifest is portable between a laptop, a
container and a cluster. The full specification is ``data_manifests/SCHEMA.md``.

Examples:
    >>> from mrivol.data import build_manifest, to_datalist
    >>> df = build_manifest(layout="brats2021", root="/data/brats",  # doctest: +SKIP
    ...                     out="data_manifests/brats2021.csv", root_var="BRATS2021_ROOT")
    >>> train = to_datalist("data_manifests/brats2021.csv", fold=0, split="train")  # doctest: +SKIP
    >>> train[0]["image"]  # [t1, t1ce, t2, flair] as absolute paths  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import partial
from pathlib import Path

import pandas as pd

from mrivol.data.layout import (
    BASE_COLUMNS,
    BRATS2023_MODALITIES,
    BRATS_MODALITIES,
    Layout,
    ManifestError,
)
from mrivol.data.splits import assign_subject_folds, check_no_subject_leakage
from mrivol.data.t1_table import T1_CLASSES, scan_t1_table
from mrivol.io import atomic_path

__all__ = [
    "BASE_COLUMNS",
    "LAYOUTS",
    "Layout",
    "ManifestError",
    "build_manifest",
    "infer_layout",
    "manifest_hash",
    "manifest_settings",
    "read_manifest",
    "read_manifest_table",
    "resolve_dataset_root",
]

_ENV_ROOT = re.compile(r"^\$(?:\{(?P<braced>[A-Za-z_]\w*)\}|(?P<bare>[A-Za-z_]\w*))(?P<rest>/.*)?$")


def _scan_brats(root: Path, table: Path | None = None, *, layout: str, sep: str) -> list[dict]:
    """Find BraTS cases: ``<case>/<case><sep><column>.nii.gz`` (or ``.nii``) under ``root``.

    BraTS 2021 names files ``<case>_t1.nii.gz``, BraTS 2023+ ``<case>-t1n.nii.gz`` (its case id
    ``BraTS-GLI-00000-001`` is subject ``BraTS-GLI-00000``, time point ``001``: the scans of one
    subject share a fold). A case with a missing file comes back with ``missing`` (its missing
    files) instead of its paths.
    """
    lay = LAYOUTS[layout]
    rows = []
    for case_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        case = case_dir.name
        # BraTS 2023+ ids end in the time point (BraTS-GLI-00000-001: subject 00000, scan 001)
        timepoint = re.fullmatch(r"(.+)-(\d{3})", case) if sep == "-" else None
        subject, session = (timepoint[1], timepoint[2]) if timepoint else (case, "")
        row: dict = {"case_id": case, "subject_id": subject, "session": session}
        missing = []
        for key in lay.path_columns:
            found = [case_dir / f"{case}{sep}{key}{ext}" for ext in (".nii.gz", ".nii")]
            found = [p for p in found if p.is_file()]
            if found:
                row[key] = found[0].relative_to(root).as_posix()
            else:
                missing.append(f"{case}{sep}{key}.nii.gz")
        rows.append({**row, "missing": missing} if missing else row)
    return rows


LAYOUTS: dict[str, Layout] = {
    "brats2021": Layout(
        name="brats2021",
        images=BRATS_MODALITIES,
        label="seg",
        label_values=frozenset({0, 1, 2, 4}),
        scan=partial(_scan_brats, layout="brats2021", sep="_"),
        et_label=4,
    ),
    "brats2023": Layout(  # GLI, MEN, MET, PED, SSA 2023-2025: 1 NCR, 2 ED, 3 ET
        name="brats2023",
        images=BRATS2023_MODALITIES,
        label="seg",
        label_values=frozenset({0, 1, 2, 3}),
        scan=partial(_scan_brats, layout="brats2023", sep="-"),
        et_label=3,
    ),
    "t1-table": Layout(
        name="t1-table",
        images=("t1",),
        target="diagnosis",
        classes=T1_CLASSES,
        flags=("synthetic",),
        scan=scan_t1_table,
    ),
}


def _get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ManifestError(f"Unknown layout {name!r}; known layouts: {sorted(LAYOUTS)}.")
    return LAYOUTS[name]


def infer_layout(columns: list[str] | tuple[str, ...], *, name: str = "manifest") -> Layout:
    """Return the registered layout whose column set equals ``columns``.

    Args:
        columns: the manifest's header.
        name: manifest name for the error message.

    Returns:
        The matching :class:`Layout`.

    Raises:
        ManifestError: if no layout matches, naming the closest one and its missing/extra columns.
    """
    cols = set(columns)
    for layout in LAYOUTS.values():
        if cols == set(layout.columns):
            return layout
    best = max(LAYOUTS.values(), key=lambda lay: len(cols & set(lay.columns)))
    missing = [c for c in best.columns if c not in cols]
    extra = sorted(cols - set(best.columns))
    raise ManifestError(
        f"{name}: columns match no layout (closest {best.name!r}: missing {missing}, "
        f"unexpected {extra}). Expected e.g. {list(best.columns)}; see data_manifests/SCHEMA.md."
    )


def resolve_dataset_root(value: str, *, manifest_dir: str | Path, name: str = "manifest") -> str:
    """Resolve a ``dataset_root`` cell to an absolute directory.

    Args:
        value: ``$NAME``, ``${NAME}`` (optionally followed by ``/sub/dir``), or a path relative
            to the manifest's directory (an absolute path is accepted as written).
        manifest_dir: directory of the manifest file.
        name: manifest name for error messages.

    Returns:
        The absolute, normalised directory (symlinks are kept).

    Raises:
        ManifestError: if the cell is empty or names an unset environment variable.
    """
    value = value.strip()
    if not value:
        raise ManifestError(f"{name}: empty dataset_root; write $VAR or a relative directory.")
    match = _ENV_ROOT.match(value)
    if match:
        var = match["braced"] or match["bare"]
        base = os.environ.get(var)
        if not base:
            raise ManifestError(
                f"{name}: dataset_root is {value!r} but the environment variable {var} is not "
                f"set. Set it to the dataset directory, e.g. `export {var}=/path/to/data`."
            )
        root = os.path.join(os.path.expanduser(base), (match["rest"] or "").lstrip("/"))
        return os.path.abspath(root)
    if value.startswith("$"):
        raise ManifestError(f"{name}: bad dataset_root {value!r}; use $NAME or ${{NAME}}.")
    return os.path.abspath(os.path.join(manifest_dir, os.path.expanduser(value)))


def read_manifest_table(path: str | Path) -> tuple[pd.DataFrame, Layout]:
    """Read a manifest CSV as strings, unvalidated, and find its layout.

    Args:
        path: the manifest CSV.

    Returns:
        ``(table, layout)``: every cell a ``str`` (empty cells stay ``""``), columns in the
        layout's order, relative paths and ``dataset_root`` as written.

    Raises:
        ManifestError: if the file is missing or its columns match no layout.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"Manifest {path} not found; build one with `mrivol manifest build`.")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    layout = infer_layout(list(df.columns), name=str(path))
    return df[list(layout.columns)], layout


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read and validate a manifest; image and label paths come back absolute.

    Checks columns (against the registered layouts), non-empty ``case_id`` / ``subject_id`` /
    paths, unique ``case_id``, integer ``fold >= 0`` and subject-level folds. It does not open
    the images: use :func:`mrivol.data.manifest_check.check_manifest` for that.

    Args:
        path: the manifest CSV.

    Returns:
        A DataFrame with the layout's columns in order, ``fold`` as ``int64``, ``dataset_root``
        and path columns as absolute strings, and ``attrs`` ``{"manifest": str(path),
        "layout": layout name, "sha256": manifest_hash(path)}``.

    Raises:
        ManifestError: listing every invalid row, or naming the unset environment variable.
        SubjectLeakageError: if one subject has scans in two folds.
    """
    path = Path(path)
    df, layout = read_manifest_table(path)
    name = str(path)
    errors = []
    for col in ("case_id", "subject_id", "dataset_root", *layout.path_columns):
        for i in df.index[df[col].str.strip() == ""]:
            errors.append(f"row {i + 2} (case {df.at[i, 'case_id'] or '?'}): empty {col}")
    folds = pd.to_numeric(df["fold"], errors="coerce")
    for i in df.index[folds.isna() | (folds < 0) | (folds % 1 != 0)]:
        errors.append(
            f"row {i + 2} (case {df.at[i, 'case_id']}): fold {df.at[i, 'fold']!r} "
            "is not an integer >= 0"
        )
    if layout.classes:
        for i in df.index[~df[layout.target].str.strip().isin(layout.classes)]:
            errors.append(
                f"row {i + 2} (case {df.at[i, 'case_id']}): {layout.target} "
                f"{df.at[i, layout.target]!r} is not one of {list(layout.classes)}"
            )
    for flag in layout.flags:
        for i in df.index[~df[flag].str.strip().isin(("", "0", "1"))]:
            errors.append(
                f"row {i + 2} (case {df.at[i, 'case_id']}): {flag} {df.at[i, flag]!r} "
                "is not 0, 1 or empty"
            )
    dup = df["case_id"][df["case_id"].duplicated(keep=False) & (df["case_id"] != "")]
    errors += [f"case_id {c!r} appears {n} times" for c, n in dup.value_counts().items()]
    if errors:
        shown = "\n  ".join(errors[:20]) + (
            f"\n  ... {len(errors) - 20} more" if len(errors) > 20 else ""
        )
        raise ManifestError(
            f"{name}: {len(errors)} invalid row(s):\n  {shown}\n"
            "Fix the CSV or rebuild it with `mrivol manifest build`."
        )
    df["fold"] = folds.astype("int64")
    for col in ("case_id", "subject_id", "session"):
        df[col] = df[col].str.strip()
    for flag in layout.flags:
        df[flag] = df[flag].str.strip() == "1"
    check_no_subject_leakage(df, name=name)

    roots = {
        v: resolve_dataset_root(v, manifest_dir=path.parent, name=name)
        for v in df["dataset_root"].unique()
    }
    df["dataset_root"] = df["dataset_root"].map(roots)
    for col in layout.path_columns:
        pairs = zip(df["dataset_root"], df[col], strict=True)
        df[col] = [os.path.normpath(os.path.join(r, p)) for r, p in pairs]
    df.attrs.update(manifest=name, layout=layout.name, sha256=manifest_hash(path))
    return df


def manifest_settings(path: str | Path) -> dict[str, int]:
    """The bundle config values a manifest's layout implies: ``et_label`` of a BraTS layout.

    So a ``brats2023`` manifest trains and is scored with ET = 3 without a config edit.

    Examples:
        >>> manifest_settings("data_manifests/brats2023.csv")  # doctest: +SKIP
        {'et_label': 3}
    """
    _, layout = read_manifest_table(path)
    return {"et_label": layout.et_label} if layout.et_label is not None else {}


def manifest_hash(path: str | Path) -> str:
    """Return the sha256 hex digest of the manifest file's bytes (logged with every run)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_manifest(
    *,
    layout: str,
    root: str | Path,
    out: str | Path,
    folds: int = 5,
    seed: int = 0,
    root_var: str | None = None,
    table: str | Path | None = None,
) -> pd.DataFrame:
    """Scan a dataset directory and write its manifest with subject-level folds.

    Args:
        layout: a key of :data:`LAYOUTS`: ``"brats2021"``, ``"brats2023"`` or ``"t1-table"``.
        root: dataset directory (``brats2021``: one ``<case>/`` sub-directory per case with
            ``<case>_{t1,t1ce,t2,flair,seg}.nii.gz``; ``brats2023``: ``<case>/<case>-{t1n,t1c,
            t2w,t2f,seg}.nii.gz``, the four stacked as the bundles' t1, t1ce, t2, flair).
        out: manifest CSV to write (atomically: temp file + ``os.replace``).
        folds: number of cross-validation folds (balanced by subject count).
        seed: shuffling seed; the same data, seed and ``folds`` give the same file.
        root_var: write ``dataset_root`` as ``$ROOT_VAR`` instead of a path relative to
            ``out``'s directory. Either way no absolute path is written.
        table: the listing a table layout reads (``t1-table``: a CSV of ``subject, session,
            t1, diagnosis``, paths relative to ``root``; see ``data_manifests/SCHEMA.md``).
            Folds are then stratified by the target (diagnosis).

    Returns:
        The manifest as written (relative paths, unresolved ``dataset_root``) of the complete
        cases; ``attrs["incomplete"]`` maps each left-out case to its missing files.

    Raises:
        ManifestError: unknown layout, missing root, no complete case (listing the incomplete
            ones), ``folds`` < 1 or more folds than subjects, bad ``root_var``.

    Examples:
        >>> build_manifest(layout="brats2021", root="/data/BraTS2021", folds=5,  # doctest: +SKIP
        ...                out="data_manifests/brats2021.csv", root_var="BRATS2021_ROOT")
    """
    lay = _get_layout(layout)
    root, out = Path(root), Path(out)
    if lay.scan is None:
        raise ManifestError(f"Layout {layout!r} has no scanner; write its manifest by hand.")
    if not root.is_dir():
        raise ManifestError(f"Dataset root {root} is not a directory (layout {layout!r}).")
    if root_var is not None and not re.fullmatch(r"[A-Za-z_]\w*", root_var):
        raise ManifestError(f"root_var {root_var!r} is not a valid environment variable name.")
    rows = lay.scan(root, Path(table) if table is not None else None)
    incomplete = {r["case_id"]: r["missing"] for r in rows if r.get("missing")}
    rows = [r for r in rows if not r.get("missing")]
    if not rows:
        listed = "".join(f"\n  {c}: missing {', '.join(m)}" for c, m in incomplete.items())
        raise ManifestError(
            f"No complete {layout} cases found under {root}; check the directory layout."
            + (f" Incomplete cases:{listed}" if listed else "")
        )
    df = pd.DataFrame(rows)
    subjects = df["subject_id"].unique().tolist()
    if not 1 <= folds <= len(subjects):
        raise ManifestError(
            f"folds={folds} for {len(subjects)} subject(s) under {root}: need 1 <= folds <= "
            "number of subjects so that no fold is empty."
        )
    # stratify on each subject's first (baseline) diagnosis: later sessions may progress
    strata = (
        df.groupby("subject_id", sort=False)[lay.target].first().to_dict() if lay.target else None
    )
    fold_of = assign_subject_folds(subjects, n_folds=folds, seed=seed, strata=strata)
    df["fold"] = df["subject_id"].map(fold_of).astype("int64")
    for flag in lay.flags:
        df[flag] = df[flag].astype(str) if flag in df else "0"
    if root_var:
        df["dataset_root"] = f"${root_var}"
    else:
        df["dataset_root"] = Path(
            os.path.relpath(root.absolute(), out.parent.absolute())
        ).as_posix()
    df = df[list(lay.columns)]
    with atomic_path(out, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8")
    df.attrs["incomplete"] = incomplete
    return df

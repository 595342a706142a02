"""The ``t1-table`` layout: a table of T1 scans with a diagnosis (ADNI / OASIS style).

Real Alzheimer's collections are not laid out by a fixed directory convention; they come with
a table. ``mrivol manifest build --layout t1-table --table FILE.csv --root DIR`` reads one row
per scan with the columns ``subject, session, t1, diagnosis`` (paths relative to ``DIR``, or
absolute below it) and writes a manifest with stratified subject-level folds
(:func:`mrivol.data.splits.assign_subject_folds` with ``strata`` = each subject's baseline
diagnosis). An optional ``synthetic`` column (``0``/``1``) is carried over.

Examples:
    >>> rows = scan_t1_table(Path("/data/adni"), Path("adni.csv"))  # doctest: +SKIP
    >>> rows[0]  # doctest: +SKIP
    {'case_id': '002_S_0295_m00', 'subject_id': '002_S_0295', 'session': 'm00',
     't1': '002_S_0295/m00/t1.nii.gz', 'diagnosis': 'CN', 'synthetic': '0'}
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mrivol.data.layout import ManifestError

__all__ = ["DIAGNOSIS_ALIASES", "T1_CLASSES", "TABLE_COLUMNS", "scan_t1_table"]

#: Class names in class-index order (``item["label"]``): cognitively normal, mild cognitive
#: impairment, Alzheimer's disease.
T1_CLASSES: tuple[str, ...] = ("CN", "MCI", "AD")
#: Columns the input table must have (``synthetic`` is optional).
TABLE_COLUMNS: tuple[str, ...] = ("subject", "session", "t1", "diagnosis")
#: Common spellings in ADNI / OASIS tables, mapped to :data:`T1_CLASSES`.
DIAGNOSIS_ALIASES: dict[str, str] = {
    "cn": "CN",
    "nc": "CN",
    "hc": "CN",
    "normal": "CN",
    "control": "CN",
    "mci": "MCI",
    "emci": "MCI",
    "lmci": "MCI",
    "ad": "AD",
    "dementia": "AD",
}


def _case_id(subject: str, session: str) -> str:
    return re.sub(r"[^\w.-]", "_", f"{subject}_{session}" if session else subject)


def scan_t1_table(root: Path, table: Path | None) -> list[dict[str, str]]:
    """Read a scan table into manifest rows (the ``scan`` of the ``t1-table`` layout).

    Args:
        root: dataset directory; every ``t1`` path is relative to it (or absolute inside it).
        table: CSV with columns ``subject, session, t1, diagnosis`` (optional ``synthetic``).

    Returns:
        One dict per scan with ``case_id`` (``<subject>_<session>``), ``subject_id``,
        ``session``, ``t1`` (relative to ``root``), ``diagnosis`` (one of :data:`T1_CLASSES`)
        and ``synthetic`` (``"0"`` or ``"1"``).

    Raises:
        ManifestError: no table given, missing columns, or every row with an unknown
            diagnosis, a missing file, a path outside ``root`` or a duplicate
            subject/session (all listed, not only the first).
    """
    if table is None:
        raise ManifestError(
            "layout 't1-table' reads a table: pass --table FILE.csv with columns "
            f"{', '.join(TABLE_COLUMNS)}."
        )
    if not table.is_file():
        raise ManifestError(f"t1-table: table {table} not found.")
    df = pd.read_csv(table, dtype=str, keep_default_na=False)
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(
            f"{table}: missing column(s) {missing}; a t1-table needs {list(TABLE_COLUMNS)} "
            "(and optionally 'synthetic')."
        )
    rows, errors, seen = [], [], set()
    root_abs = root.absolute()
    for i, rec in enumerate(df.to_dict("records"), start=2):
        subject, session = rec["subject"].strip(), rec["session"].strip()
        where = f"row {i} (subject {subject or '?'}, session {session or '-'})"
        diagnosis = DIAGNOSIS_ALIASES.get(rec["diagnosis"].strip().lower())
        if diagnosis is None:
            errors.append(
                f"{where}: diagnosis {rec['diagnosis']!r} is not one of {list(T1_CLASSES)} "
                f"(or {sorted(DIAGNOSIS_ALIASES)})"
            )
        if not subject:
            errors.append(f"{where}: empty subject")
        if (subject, session) in seen:
            errors.append(f"{where}: subject/session listed twice")
        seen.add((subject, session))
        path = Path(rec["t1"].strip())
        full = path if path.is_absolute() else root_abs / path
        if not rec["t1"].strip() or not full.is_file():
            errors.append(f"{where}: T1 file {full} not found")
            continue
        try:
            rel = full.absolute().relative_to(root_abs).as_posix()
        except ValueError:
            errors.append(f"{where}: {full} is outside the dataset root {root_abs}")
            continue
        synthetic = rec.get("synthetic", "0").strip() or "0"
        if synthetic not in ("0", "1"):
            errors.append(f"{where}: synthetic {synthetic!r} is not 0 or 1")
        rows.append(
            {
                "case_id": _case_id(subject, session),
                "subject_id": subject,
                "session": session,
                "t1": rel,
                "diagnosis": diagnosis or "",
                "synthetic": synthetic,
            }
        )
    if errors:
        shown = "\n  ".join(errors[:20]) + (
            f"\n  ... {len(errors) - 20} more" if len(errors) > 20 else ""
        )
        raise ManifestError(
            f"{table}: {len(errors)} invalid row(s):\n  {shown}\nFix the table and rebuild."
        )
    return rows

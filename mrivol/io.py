"""Atomic writes: a temporary file in the destination folder, then ``os.replace``; and the
exclusive file lock that serialises processes sharing a file (:func:`exclusive_lock`).

Standard library only, so every layer (data, metrics, networks, engine) can use it without
importing the engine package.
"""

from __future__ import annotations

import csv
import fcntl
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "case_output_name",
    "exclusive_lock",
    "save_figure_atomic",
    "write_csv_atomic",
    "write_text_atomic",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if absent) for the block (POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    Examples:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_figure_atomic(fig: object, path: str | Path, **savefig_kwargs: object) -> Path:
    """``fig.savefig`` to ``path`` atomically (a matplotlib figure; the format from the suffix)."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, **savefig_kwargs)  # type: ignore[attr-defined]
    return path


def write_csv_atomic(rows: Sequence[Mapping[str, object]], path: str | Path) -> Path:
    """Write dict rows (columns from the first row) to a CSV atomically."""
    with atomic_path(path, suffix=".csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


# BraTS 2021 (`<case>_t1ce`) and BraTS 2023+ (`<case>-t1c`) modality suffixes
MODALITY_SUFFIXES = ("_t1", "_t1ce", "_t2", "_flair", "-t1n", "-t1c", "-t2w", "-t2f")


def case_output_name(metadict: dict, saver: object) -> dict[str, str]:
    """``output_name_formatter`` for MONAI's ``SaveImaged``: name outputs by case id.

    The case id is the first input file's name without its modality suffix (BraTS naming:
    ``<case>_t1.nii.gz`` and ``<case>-t1n.nii.gz`` give ``<case>``), so predictions are
    ``<case>_seg.nii.gz``.
    """
    source = metadict.get("filename_or_obj", "case")
    source = source[0] if isinstance(source, (list, tuple)) else source
    name = Path(str(source)).name.split(".nii")[0]
    for suffix in MODALITY_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return {"subject": name}

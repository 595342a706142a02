"""Split ``mrivol infer`` over processes (``--shard i/n``) and resume it after a kill.

* :class:`Shard`: shard ``i`` of ``n`` takes the cases at positions ``i, i + n, i + 2n, ...`` of
  the case ids in sorted order, so ``n`` processes given the same input and ``--out`` write
  every case exactly once, whatever order the manifest or folder lists them in.
* :func:`unfinished_cases`: a case whose outputs are all in ``--out`` is skipped. Every output
  is written atomically, the label map last (:mod:`mrivol.inference.save_case_outputs`), so a
  present file is a complete file; a killed run leaves at most temporary files, which
  :func:`remove_temporaries` clears for the cases about to be redone.
* the per-run reports (``volumes.csv``) are rewritten by every shard from all the label maps
  present, one shard at a time (:func:`mrivol.io.exclusive_lock`), so the last shard to finish
  writes the report of every case.
"""

from __future__ import annotations

import argparse
import glob
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrivol.inference.save_case_outputs import case_outputs
from mrivol.io import case_output_name

__all__ = [
    "Shard",
    "item_case",
    "remove_temporaries",
    "shard_argument",
    "unfinished_cases",
]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``).

    Examples:
        >>> shard = Shard.parse("1/3")
        >>> shard.select([{"case_id": c} for c in "edcba"])
        [{'case_id': 'b'}, {'case_id': 'e'}]
        >>> str(shard)
        '1/3'

    Raises:
        ValueError: ``index`` or ``count`` out of range.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                f"shard {self.index}/{self.count}: need n >= 1 and 0 <= i < n "
                "(e.g. 0/2 and 1/2 for two processes)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` as a :class:`Shard`.

        Raises:
            ValueError: not two integers ``i/n`` with ``0 <= i < n``.
        """
        index, sep, count = str(text).strip().partition("/")
        if not (sep and index.isdigit() and count.isdigit()):
            raise ValueError(f"shard {text!r}: expected i/n with integers 0 <= i < n, e.g. 0/2")
        return cls(int(index), int(count))

    def select(self, items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """This shard's items, in case-id order."""
        ordered = sorted(items, key=item_case)
        return ordered[self.index :: self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_argument(text: str) -> Shard:
    """``type=`` for argparse: ``--shard i/n`` (a bad value is a usage error naming it)."""
    try:
        return Shard.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def item_case(item: Mapping[str, Any]) -> str:
    """The case id outputs are named after: ``case_id``, else the first image's name."""
    if item.get("case_id"):
        return str(item["case_id"])
    image = item["image"]
    first = image[0] if isinstance(image, (list, tuple)) else image
    return case_output_name({"filename_or_obj": str(first)}, None)["subject"]


def unfinished_cases(
    items: Sequence[Mapping[str, Any]],
    out: str | Path,
    *,
    regions: Sequence[str],
    uncertainty: bool,
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """Split ``items`` into those still to segment and the case ids already complete in ``out``.

    Raises:
        ValueError: two items have the same case id (they would overwrite each other).
    """
    counts = Counter(item_case(item) for item in items)
    duplicates = sorted(c for c, n in counts.items() if n > 1)
    if duplicates:
        raise ValueError(
            f"case id(s) {', '.join(duplicates)} appear more than once in the input; their "
            "outputs would overwrite each other. Give each case one set of images."
        )
    todo, finished = [], []
    for item in items:
        case = item_case(item)
        paths = case_outputs(out, case, regions=regions, uncertainty=uncertainty)
        if all(p.is_file() for p in paths):
            finished.append(case)
        else:
            todo.append(item)
    return todo, finished


def remove_temporaries(out: str | Path, cases: Sequence[str], *, regions: Sequence[str]) -> int:
    """Remove the temporary files a killed run left for ``cases``; returns how many.

    Only this process writes these cases (shards are disjoint), so their temporaries are
    leftovers, not another process's writes in progress.
    """
    removed = 0
    for case in cases:
        for path in case_outputs(out, case, regions=regions, uncertainty=True):
            for tmp in path.parent.glob(f".{glob.escape(path.name)}.*"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed

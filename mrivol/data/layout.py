"""What a dataset layout is: its manifest columns, label values and scanner; the manifest error.

The layouts themselves (``brats2021``, ``t1-table``) are registered in
:data:`mrivol.data.manifest.LAYOUTS`; their scanners live in their own modules and import only
this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BASE_COLUMNS", "BRATS2023_MODALITIES", "BRATS_MODALITIES", "Layout", "ManifestError"]

BASE_COLUMNS: tuple[str, ...] = ("case_id", "subject_id", "session", "fold", "dataset_root")
#: The four BraTS modalities in the channel order every segmentation bundle stacks them.
BRATS_MODALITIES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
#: The BraTS 2023+ modalities (file suffixes and manifest columns) in the same channel order:
#: t1n -> t1, t1c -> t1ce, t2w -> t2, t2f -> flair.
BRATS2023_MODALITIES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")


class ManifestError(ValueError):
    """A manifest cannot be built or read; the message names the manifest, case and fix."""


@dataclass(frozen=True)
class Layout:
    """How one kind of dataset is laid out on disk and in its manifest.

    Args:
        name: registry key, e.g. ``"brats2021"``.
        images: image columns in channel order; they become ``item["image"]``.
        label: label-map column (a path, e.g. ``"seg"``), or ``None``.
        label_values: voxel values allowed in the label map (checked by ``check_manifest``).
        et_label: the enhancing-tumour value of a BraTS label map (4 for BraTS 2018-2022, 3 for
            BraTS 2023+; the bundles' ``et_label``), or ``None``.
        target: class column (a value, not a path, e.g. ``"diagnosis"``), or ``None``.
        classes: allowed values of ``target`` in class-index order (``item["label"]`` is the
            index), or ``None``.
        flags: boolean columns after ``target`` (``"synthetic"``: ``1`` marks a generated or
            augmented sample, which :func:`to_datalist` never puts in an evaluation split).
        scan: ``scan(root, table) -> list[dict]`` finding the cases under ``root`` (``table``:
            an optional listing file) for :func:`build_manifest`; each dict holds
            ``case_id``, ``subject_id``, ``session``, one path relative to ``root`` per
            image/label column and the target; an incomplete case holds ``missing`` (its
            missing files) instead.
    """

    name: str
    images: tuple[str, ...]
    label: str | None = None
    label_values: frozenset[int] | None = None
    et_label: int | None = None
    target: str | None = None
    classes: tuple[str, ...] | None = None
    flags: tuple[str, ...] = ()
    scan: Callable[[Path, Path | None], list[dict[str, str]]] | None = field(
        default=None, compare=False
    )

    @property
    def path_columns(self) -> tuple[str, ...]:
        """Columns holding paths relative to ``dataset_root`` (images, then the label map)."""
        return self.images + ((self.label,) if self.label else ())

    @property
    def columns(self) -> tuple[str, ...]:
        """All manifest columns in their fixed order."""
        return (
            BASE_COLUMNS + self.path_columns + ((self.target,) if self.target else ()) + self.flags
        )

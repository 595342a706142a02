"""What makes a loaded volume unusable: one set of checks for ``manifest check`` and ``preprocess``.

Each check names the problem and the likely cause, as measured on broken corpora: NaN/Inf
voxels (SimpleITK reads them as 0), a constant modality (an empty or failed export: every
voxel 0), a label map with non-integer values (a label resampled with linear interpolation:
casting it to integers would silently invent labels at every border), and label values
outside the layout's set (the other label convention, or a multi-class map).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

__all__ = ["volume_problems"]


def volume_problems(
    data: np.ndarray, *, label: bool = False, label_values: Collection[int] | None = None
) -> list[str]:
    """Return the problems of one loaded 3D volume (empty when it is usable).

    Args:
        data: the voxel array as read (any dtype; float labels are checked before any cast).
        label: the volume is a label map (integers expected; a constant map, e.g. a case
            without tumour, is fine).
        label_values: the values a label map may hold (``{0, 1, 2, 4}`` for BraTS 2021).

    Returns:
        Problem texts, without the column name (the caller prefixes it).

    Examples:
        >>> import numpy as np
        >>> volume_problems(np.zeros((4, 4, 4), np.float32))
        ['constant image (0 everywhere): an empty or failed export?']
        >>> seg = np.zeros((4, 4, 4), np.float32); seg[1, 1, 1] = 0.5; seg[2, 2, 2] = 2
        >>> volume_problems(seg, label=True, label_values={0, 1, 2, 4})[0][:45]
        '1 voxel(s) with non-integer label values (e.g'
    """
    problems: list[str] = []
    finite = np.isfinite(data) if data.dtype.kind == "f" else None
    if finite is not None and not finite.all():
        problems.append(
            f"{int(data.size - np.count_nonzero(finite))} NaN/Inf voxel(s); fix the export "
            "(SimpleITK would read NaN as 0)"
        )
    values = data[finite] if finite is not None else data
    if not values.size:
        return problems or ["no finite voxel"]
    if not label:
        lo, hi = float(values.min()), float(values.max())
        if lo == hi:
            problems.append(f"constant image ({lo:g} everywhere): an empty or failed export?")
        return problems
    if values.dtype.kind == "f":
        fractional = values != np.round(values)
        if fractional.any():
            example = float(values[fractional][0])
            problems.append(
                f"{int(np.count_nonzero(fractional))} voxel(s) with non-integer label values "
                f"(e.g. {example:g}): a label map resampled with linear interpolation? "
                "Resample labels with nearest neighbour"
            )
            values = values[~fractional]
    if label_values is not None:
        present, counts = np.unique(values, return_counts=True)
        wrong = [(v, n) for v, n in zip(present.tolist(), counts.tolist(), strict=True)
                 if v not in label_values]  # fmt: skip
        if wrong:
            problems.append(
                f"label value(s) outside {sorted(label_values)}: "
                + ", ".join(f"{v:g} ({n} voxels)" for v, n in wrong[:10])
                + " (the other BraTS label convention?)"
            )
    return problems

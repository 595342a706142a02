"""BraTS post-processing rules (tuned on out-of-fold predictions by ``mrivol cv``), applied.

Two kinds of rule, as the BraTS entries of nnU-Net use them (Isensee et al., "nnU-Net for Brain
Tumor Segmentation", BrainLes 2020, section 2.4: an enhancing tumour smaller than a threshold
volume is relabelled as necrosis; nnU-Net v2's ``postprocessing/remove_connected_components.py``
removes components only where that raises the cross-validation score):

* ``min_component_mm3[region]``: the 26-connected components of a region smaller than this
  volume are removed, keeping the BraTS nesting: a whole-tumour (``wt``) component becomes
  background, a tumour-core (``tc``) component oedema (it stays in WT), an enhancing-tumour
  (``et``) component necrosis (it stays in TC). Applied in the order WT, TC, ET.
* ``et_min_total_mm3``: when a case's whole enhancing tumour (after the above) is smaller than
  this volume, all of it becomes necrosis.

An empty rule set changes nothing. Why by hand: MONAI's ``RemoveSmallObjects`` needs
scikit-image, which the pinned stack does not install; ``scipy.ndimage.label`` with the 3x3x3
structure gives the same 26-connected components.

Examples:
    >>> import numpy as np
    >>> y = np.zeros((10, 10, 10), np.uint8); y[1:5, 1:5, 1:5] = 2; y[8, 8, 8] = 4
    >>> rules = Postprocessing(min_component_mm3={"wt": 2.0})
    >>> int((apply_postprocessing(y, rules, spacing=(1, 1, 1)) == 4).sum())
    0
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from mrivol.io import write_text_atomic

__all__ = [
    "PP_REGIONS",
    "Postprocessing",
    "apply_postprocessing",
    "read_postprocessing",
    "write_postprocessing",
]

#: regions a component rule may name, in the order they are applied
PP_REGIONS = ("wt", "tc", "et")
_CONN26 = ndimage.generate_binary_structure(3, 3)


@dataclass
class Postprocessing:
    """Post-processing rules of a BraTS label map (see the module docstring).

    Attributes:
        min_component_mm3: ``{region: volume}`` with region ``wt``, ``tc`` or ``et``.
        et_min_total_mm3: ET volume below which a case's ET becomes necrosis (``None``: off).
    """

    min_component_mm3: dict[str, float] = field(default_factory=dict)
    et_min_total_mm3: float | None = None

    def __post_init__(self) -> None:
        unknown = set(self.min_component_mm3) - set(PP_REGIONS)
        if unknown:
            raise ValueError(
                f"post-processing: unknown region(s) {sorted(unknown)}; use {PP_REGIONS}"
            )
        bad = {r: v for r, v in self.min_component_mm3.items() if not v > 0}
        if bad or (self.et_min_total_mm3 is not None and not self.et_min_total_mm3 > 0):
            raise ValueError(f"post-processing volumes must be > 0 mm^3, got {self.to_dict()}")

    @property
    def is_identity(self) -> bool:
        """True when no rule is set."""
        return not self.min_component_mm3 and self.et_min_total_mm3 is None

    def to_dict(self) -> dict[str, Any]:
        """The rules as JSON-ready values."""
        return {
            "min_component_mm3": {
                r: float(self.min_component_mm3[r]) for r in PP_REGIONS if r in self
            },
            "et_min_total_mm3": self.et_min_total_mm3,
        }

    def __contains__(self, region: object) -> bool:
        return region in self.min_component_mm3

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Postprocessing:
        """Rules from :meth:`to_dict` output (the ``rules`` of ``postprocessing.json``)."""
        et = data.get("et_min_total_mm3")
        return cls(
            {str(k): float(v) for k, v in dict(data.get("min_component_mm3") or {}).items()},
            None if et is None else float(et),
        )

    def describe(self) -> str:
        """One line for the console, e.g. ``wt components < 50 mm^3 removed; ET < 200 -> NCR``."""
        parts = [
            f"{r} components < {self.min_component_mm3[r]:g} mm^3 removed"
            for r in PP_REGIONS
            if r in self
        ]
        if self.et_min_total_mm3 is not None:
            parts.append(f"ET < {self.et_min_total_mm3:g} mm^3 in all -> necrosis")
        return "; ".join(parts) or "none (no rule raised the OOF score)"


def _et_label(labels: str) -> int:
    if labels not in ("brats2021", "brats2023"):
        raise ValueError(f"unknown label convention {labels!r}; use brats2021 or brats2023")
    return 4 if labels == "brats2021" else 3


def _small_components(mask: np.ndarray, min_volume: float, voxel_mm3: float) -> np.ndarray:
    """Voxels of the 26-connected components of ``mask`` smaller than ``min_volume`` mm^3."""
    components, n = ndimage.label(mask, structure=_CONN26)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(components.ravel(), minlength=n + 1) * voxel_mm3
    small = sizes < min_volume
    small[0] = False
    return small[components]


def apply_postprocessing(
    label_map: Any, rules: Postprocessing, *, spacing: Sequence[float], labels: str = "brats2021"
) -> np.ndarray:
    """Apply ``rules`` to one BraTS label map; returns a new uint8 map.

    Args:
        label_map: (H, W, D) label map (1 NCR, 2 ED, ET 4 or 3).
        rules: the rules.
        spacing: voxel spacing in mm (volumes are in mm^3).
        labels: ``"brats2021"`` (ET 4) or ``"brats2023"`` (ET 3).

    Raises:
        ValueError: a map that is not 3D, a bad spacing or an unknown convention.
    """
    et = _et_label(labels)
    out = np.asarray(label_map).astype(np.uint8).copy()
    if out.ndim != 3:
        raise ValueError(f"post-processing expects a 3D label map, got shape {out.shape}")
    voxel = float(np.prod(np.asarray(spacing, dtype=np.float64)))
    if len(spacing) != 3 or not voxel > 0:
        raise ValueError(f"spacing must be three positive numbers (mm), got {spacing!r}")
    masks = {"wt": lambda a: a > 0, "tc": lambda a: (a == 1) | (a == et), "et": lambda a: a == et}
    becomes = {"wt": 0, "tc": 2, "et": 1}
    for region in PP_REGIONS:
        if region in rules:
            small = _small_components(masks[region](out), rules.min_component_mm3[region], voxel)
            out[small] = becomes[region]
    if rules.et_min_total_mm3 is not None:
        is_et = out == et
        if is_et.sum() * voxel < rules.et_min_total_mm3:
            out[is_et] = 1
    return out


def write_postprocessing(rules: Postprocessing, path: str | Path, **extra: Any) -> Path:
    """Write ``{"rules": ..., **extra}`` (e.g. OOF scores before / after) as JSON, atomically."""
    payload = {"rules": rules.to_dict(), **extra}
    return write_text_atomic(json.dumps(payload, indent=2, default=float) + "\n", path)


def read_postprocessing(path: str | Path) -> Postprocessing:
    """The rules of a ``postprocessing.json``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds no valid rules (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"post-processing file {path} does not exist")
    try:
        return Postprocessing.from_dict(json.loads(path.read_text())["rules"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a post-processing file ({err})") from err

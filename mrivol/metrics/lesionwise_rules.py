"""The BraTS lesion-wise rules per challenge and year (:mod:`mrivol.metrics.lesionwise`).

Read from the official scripts: 2023 github.com/rachitsaluja/BraTS-2023-Metrics
(``brats_2023_metrics/surface_distance/brats_metrics.py``, ``eval.py``: GLI / SSA / PED
dilation 3, MEN / MET 1; thresholds 50 mm^3, MET 2; HD95 penalty 374 mm); 2024
github.com/rachitsaluja/BraTS-2024-Metrics (``metrics_{GLI,PED,MET,SSA,MEN,MEN_RT}.py``: per-region
dilation and thresholds, cross-region merging, prediction filtering, GLI penalty 337, MEN-RT
the voxel-grid diagonal). Names: ``BraTS-<challenge>`` for 2023, ``BraTS-<challenge>-2024``.

* **2024 cross-region merging** (GLI: NETC, SNFH, ET, RC; MET / SSA: ET with NETC), truth and
  prediction alike: lesions of a region that touch (18-neighbourhood) the same lesion of a
  partner region become one lesion. Partners go in the script's order against the partner's
  own unmerged lesions; each lesion follows the *first* partner lesion it touches (C raster
  order, the order ``cc3d`` numbers the script's dilated masks), as the script's relabelling
  does: not a transitive union.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "LESIONWISE_PRESETS",
    "PREDICTION_FILTERS",
    "LesionwiseRegion",
    "LesionwiseRules",
    "lesionwise_preset",
]

PREDICTION_FILTERS = ("none", "voxels", "mm3")


@dataclass(frozen=True)
class LesionwiseRegion:
    """One region of a rule set.

    Attributes:
        name: region name (``"WT"``); reports use it in lower case.
        labels: labels that make up the region.
        dilation: dilation iterations that merge lesions and bound a lesion's matches.
        volume_threshold_mm3: truth lesions of at most this volume are left out.
        merge_with: 2024 partner regions, in the script's order (see the module docstring).
        reported: False for a region that is only a merge partner (NETC of MET / SSA 2024).
    """

    name: str
    labels: tuple[int, ...]
    dilation: int
    volume_threshold_mm3: float
    merge_with: tuple[str, ...] = ()
    reported: bool = True


@dataclass(frozen=True)
class LesionwiseRules:
    """A challenge's lesion-wise rules.

    Attributes:
        name: preset name (``"BraTS-GLI"``, ``"BraTS-GLI-2024"``).
        year: challenge year of the official script.
        regions: the regions, in report order.
        hd95_penalty: HD95 (mm) of a missed lesion and of an FP, or ``"diagonal"``.
        count_false_positives: False leaves FPs out of the averages (MEN-RT 2024).
        prediction_filter: ``"none"``, or ``"voxels"`` / ``"mm3"``: predictions combined by
            dilation and small ones deleted, the size compared in voxels or in mm^3.
        source: the official script the rules come from.
    """

    name: str
    year: int
    regions: tuple[LesionwiseRegion, ...]
    hd95_penalty: float | str
    count_false_positives: bool = True
    prediction_filter: str = "none"
    source: str = ""

    def __post_init__(self) -> None:
        names = [r.name for r in self.regions]
        unknown = {p for r in self.regions for p in r.merge_with} - set(names)
        if len(set(names)) != len(names) or unknown:
            raise ValueError(f"{self.name}: duplicate region names or unknown partners {unknown}.")
        if self.prediction_filter not in PREDICTION_FILTERS:
            raise ValueError(f"{self.name}: prediction_filter must be one of {PREDICTION_FILTERS}.")

    @property
    def region_labels(self) -> dict[str, tuple[int, ...]]:
        """The reported regions, in report order, and the labels each is made of."""
        return {r.name: r.labels for r in self.regions if r.reported}

    @property
    def labels(self) -> frozenset[int]:
        """Every label the rules know (0 is background)."""
        return frozenset(label for r in self.regions for label in r.labels)


def _wt_tc_et(dilation: int, threshold: float, et_merge: tuple[str, ...] = ()) -> tuple:
    return (
        ("WT", (1, 2, 3), dilation, threshold),
        ("TC", (1, 3), dilation, threshold),
        ("ET", (3,), dilation, threshold, et_merge),
    )


_GLI_2024 = (  # labels 1 NETC, 2 SNFH, 3 ET, 4 RC (resection cavity)
    ("WT", (1, 2, 3), 3, 20),
    ("TC", (1, 3), 3, 20),
    ("NETC", (1,), 5, 20, ("ET", "RC")),
    ("SNFH", (2,), 3, 20, ("ET", "RC", "NETC")),  # 3, not 5: the script's "SFNH" typo
    ("ET", (3,), 3, 10, ("NETC", "RC")),
    ("RC", (4,), 5, 20, ("ET", "NETC")),
)
_PED_2024 = tuple(  # labels 1 ET, 2 NETC, 3 CC (cyst), 4 ED
    (name, labels, 5, 10)
    for name, labels in (("WT", (1, 2, 3, 4)), ("TC", (1, 2, 3)), ("ET", (1,)), ("NETC", (2,)))
    + (("CC", (3,)), ("ED", (4,)))
)
# MET / SSA 2024: ET lesions touching one NETC lesion merge; NETC is a partner, not reported
_MET_2024 = (*_wt_tc_et(1, 2, ("NETC",)), ("NETC", (1,), 1, 2, (), False))
_SSA_2024 = (*_wt_tc_et(3, 50, ("NETC",)), ("NETC", (1,), 3, 50, (), False))

# name: (year, HD95 penalty, prediction filter, count FPs, regions as LesionwiseRegion fields)
_TABLE: dict[str, tuple[int, float | str, str, bool, tuple]] = {
    "BraTS-GLI": (2023, 374.0, "none", True, _wt_tc_et(3, 50)),
    "BraTS-SSA": (2023, 374.0, "none", True, _wt_tc_et(3, 50)),
    "BraTS-MEN": (2023, 374.0, "none", True, _wt_tc_et(1, 50)),
    "BraTS-PED": (2023, 374.0, "none", True, _wt_tc_et(3, 50)),
    "BraTS-MET": (2023, 374.0, "none", True, _wt_tc_et(1, 2)),
    "BraTS-GLI-2024": (2024, 337.0, "voxels", True, _GLI_2024),
    "BraTS-PED-2024": (2024, 374.0, "voxels", True, _PED_2024),
    "BraTS-MET-2024": (2024, 374.0, "voxels", True, _MET_2024),
    "BraTS-SSA-2024": (2024, 374.0, "voxels", True, _SSA_2024),
    "BraTS-MEN-2024": (2024, 374.0, "none", True, _wt_tc_et(1, 50)),
    "BraTS-MEN-RT-2024": (2024, "diagonal", "mm3", False, (("GTV", (1,), 1, 50),)),
}


def _source(name: str, year: int) -> str:
    if year == 2023:
        return "BraTS-2023-Metrics brats_2023_metrics/surface_distance/brats_metrics.py"
    return f"BraTS-2024-Metrics metrics_{'_'.join(name.split('-')[1:-1])}.py"


#: Rule sets by challenge name: 2023 names as in the official script, 2024 with ``-2024``.
LESIONWISE_PRESETS: Mapping[str, LesionwiseRules] = {
    name: LesionwiseRules(
        name,
        year,
        tuple(LesionwiseRegion(*r) for r in regions),
        penalty,
        count_fp,
        prediction_filter,
        _source(name, year),
    )
    for name, (year, penalty, prediction_filter, count_fp, regions) in _TABLE.items()
}


def lesionwise_preset(name: str) -> LesionwiseRules:
    """Return the rules of a challenge.

    Args:
        name: a key of :data:`LESIONWISE_PRESETS`, e.g. ``"BraTS-GLI"`` (2023) or
            ``"BraTS-GLI-2024"``.

    Returns:
        The :class:`LesionwiseRules`.

    Raises:
        ValueError: If the name is unknown; the message lists the valid names.

    Examples:
        >>> r = lesionwise_preset("BraTS-MET")
        >>> r.year, r.regions[0].dilation, r.regions[0].volume_threshold_mm3
        (2023, 1, 2)
    """
    try:
        return LESIONWISE_PRESETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown lesion-wise rules {name!r}; use one of {sorted(LESIONWISE_PRESETS)}."
        ) from None

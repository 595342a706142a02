"""Tune the BraTS post-processing rules on out-of-fold predictions; keep only what helps.

The search follows nnU-Net v2's ``determine_postprocessing``
(``nnunetv2/postprocessing/remove_connected_components.py``): each candidate is applied to
every OOF case, scored against the truth, and kept only when it raises the pooled score over
the best so far, so the tuned rules never lower the OOF score. Greedy, in order: a minimum
component volume for WT, then TC, then ET, then the ET-volume threshold below which ET becomes
necrosis (the BraTS 2020 nnU-Net rule); each from a grid of volumes (mm^3). The rules are those
of :mod:`mrivol.inference.postprocessing`.

The score is the mean over cases and regions of the lesion-wise Dice under the bundle's
``lesionwise_rules`` (how BraTS ranks since 2023), or of the legacy Dice when the bundle has
none. Scores are cached per case and label map, so a candidate that changes no voxel of a
case costs nothing there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mrivol.inference.postprocessing import PP_REGIONS, Postprocessing, apply_postprocessing
from mrivol.metrics import lesionwise_report, segmentation_report

__all__ = [
    "COMPONENT_GRID_MM3",
    "ET_GRID_MM3",
    "OofScorer",
    "PostprocessingSearch",
    "search_postprocessing",
]

COMPONENT_GRID_MM3 = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
ET_GRID_MM3 = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0)


@dataclass
class PostprocessingSearch:
    """The tuned rules and the OOF score before and after them.

    Attributes:
        rules: the rules kept (possibly none).
        score_before, score_after: the pooled OOF score without and with ``rules``.
        score_name: what the score is (``lesionwise_dice`` or ``dice``, mean over regions).
        trials: every candidate tried: ``rule``, ``value``, ``score``, ``kept``.
    """

    rules: Postprocessing
    score_before: float
    score_after: float
    score_name: str
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``postprocessing.json`` payload besides the rules."""
        return {
            "score": self.score_name,
            "oof_score_before": self.score_before,
            "oof_score_after": self.score_after,
            "trials": self.trials,
        }


class OofScorer:
    """Pooled OOF score of label maps, cached per case and map.

    Args:
        cases: ``{case: (prediction path, truth path)}`` on one grid per case.
        labels: label convention of both (``brats2021`` or ``brats2023``).
        challenge: lesion-wise rules (``"BraTS-GLI"``), or ``None`` for the legacy Dice.

    Raises:
        ValueError: no cases, or a prediction on another grid than its truth.
    """

    def __init__(
        self,
        cases: Mapping[str, tuple[str | Path, str | Path]],
        *,
        labels: str,
        challenge: str | None,
    ) -> None:
        if not cases:
            raise ValueError("post-processing search: no OOF cases to tune on")
        self.labels, self.challenge = labels, challenge
        self.predictions: dict[str, np.ndarray] = {}
        self.truth: dict[str, np.ndarray] = {}
        self.spacing: dict[str, tuple[float, ...]] = {}
        for case, (pred, truth) in sorted(cases.items()):
            t_img = nib.load(truth)
            self.predictions[case] = np.asanyarray(nib.load(pred).dataobj).astype(np.uint8)
            self.truth[case] = np.asanyarray(t_img.dataobj).astype(np.uint8)
            self.spacing[case] = tuple(float(z) for z in t_img.header.get_zooms()[:3])
            if self.predictions[case].shape != self.truth[case].shape:
                raise ValueError(
                    f"case {case!r}: prediction {pred} and truth {truth} differ in shape"
                )
        self._cache: dict[tuple[str, bytes], float] = {}

    @property
    def name(self) -> str:
        """``lesionwise_dice`` or ``dice``."""
        return "lesionwise_dice" if self.challenge else "dice"

    def case_score(self, case: str, label_map: np.ndarray) -> float:
        """Mean over regions of one case's (lesion-wise) Dice."""
        key = (case, hashlib.blake2b(label_map.tobytes(), digest_size=16).digest())
        if key not in self._cache:
            truth, spacing = self.truth[case], self.spacing[case]
            if self.challenge:
                pred, true = label_map, truth
                if self.labels == "brats2021":  # the lesion-wise rules read ET as 3
                    pred, true = (np.where(a == 4, 3, a) for a in (pred, true))
                rows = lesionwise_report(
                    pred, true, spacing=spacing, rules=self.challenge, case_id=case
                )
                values = [r["lesionwise_dice"] for r in rows]
            else:
                rows = segmentation_report(
                    label_map, truth, spacing=spacing, labels=self.labels, case_id=case
                )
                values = [r["dice"] for r in rows]
            self._cache[key] = float(np.mean(values))
        return self._cache[key]

    def score(self, rules: Postprocessing) -> float:
        """The pooled score with ``rules`` applied to every case."""
        values = []
        for case, pred in self.predictions.items():
            mapped = (
                pred
                if rules.is_identity
                else apply_postprocessing(
                    pred, rules, spacing=self.spacing[case], labels=self.labels
                )
            )
            values.append(self.case_score(case, mapped))
        return float(np.mean(values))


def search_postprocessing(
    scorer: OofScorer,
    *,
    component_grid: Sequence[float] = COMPONENT_GRID_MM3,
    et_grid: Sequence[float] = ET_GRID_MM3,
    progress: bool = True,
) -> PostprocessingSearch:
    """Greedy search of the rules (module docstring); a rule is kept only if it raises the score.

    Returns:
        The :class:`PostprocessingSearch`; ``score_after >= score_before`` always.
    """
    best = before = scorer.score(Postprocessing())
    rules = Postprocessing()
    trials: list[dict[str, Any]] = []

    def attempt(name: str, value: float, candidate: Postprocessing) -> bool:
        nonlocal best
        score = scorer.score(candidate)
        trials.append({"rule": name, "value": float(value), "score": score, "kept": False})
        if score > best + 1e-12:
            best = score
            return True
        return False

    for region in PP_REGIONS:
        choice = None
        for value in component_grid:
            candidate = Postprocessing(
                {**rules.min_component_mm3, region: float(value)}, rules.et_min_total_mm3
            )
            if attempt(f"min_component_mm3.{region}", value, candidate):
                choice = candidate
        if choice is not None:
            rules = choice
            _mark_kept(trials, f"min_component_mm3.{region}", best)
    choice = None
    for value in et_grid:
        candidate = Postprocessing(dict(rules.min_component_mm3), float(value))
        if attempt("et_min_total_mm3", value, candidate):
            choice = candidate
    if choice is not None:
        rules = choice
        _mark_kept(trials, "et_min_total_mm3", best)
    if progress:
        print(
            f"post-processing on {len(scorer.predictions)} OOF cases ({scorer.name}): "
            f"{before:.4f} -> {best:.4f}; {rules.describe()}",
            flush=True,
        )
    return PostprocessingSearch(rules, before, best, scorer.name, trials)


def _mark_kept(trials: list[dict[str, Any]], rule: str, score: float) -> None:
    """Mark the trial of ``rule`` that reached ``score`` (the first such one) as kept."""
    for trial in trials:
        if trial["rule"] == rule and trial["score"] == score:
            trial["kept"] = True
            return

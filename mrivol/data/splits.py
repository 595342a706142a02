"""Subject-level cross-validation folds and the leakage check that guards them.

All scans of one subject share a fold, so a model is never validated on a subject it was
trained on (Varoquaux et al., "Cross-validation failure: small sample sizes lead to large
error bars", NeuroImage 2018; Wen et al., "Convolutional neural networks for classification
of Alzheimer's disease: overview and reproducible evaluation", MedIA 2020, on data leakage).

Written by hand rather than with scikit-learn's ``StratifiedGroupKFold`` because that would
add a dependency for ten lines, and its folds are balanced by sample count, not subject count.

Examples:
    >>> folds = assign_subject_folds(["s1", "s2", "s3", "s4", "s1"], n_folds=2, seed=0)
    >>> dict(sorted(folds.items()))
    {'s1': 1, 's2': 0, 's3': 0, 's4': 1}
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import numpy as np
import pandas as pd

__all__ = [
    "DataLeakageError",
    "SubjectLeakageError",
    "assign_subject_folds",
    "check_no_subject_leakage",
    "check_split",
    "find_subject_leakage",
]


class DataLeakageError(ValueError):
    """A split would let information from training reach validation or testing."""


class SubjectLeakageError(DataLeakageError):
    """One subject has scans in more than one fold."""


def assign_subject_folds(
    subject_ids: Iterable[str],
    *,
    n_folds: int,
    seed: int,
    strata: Mapping[str, Hashable] | None = None,
) -> dict[str, int]:
    """Assign each subject to one of ``n_folds`` folds, balanced and reproducible.

    Subjects are de-duplicated and sorted (so input order does not matter), shuffled with
    ``numpy.random.default_rng(seed)``, and dealt round-robin. With ``strata``, subjects are
    dealt stratum by stratum (strata in sorted order) continuing the same round-robin, so each
    fold gets within one subject of its share of every class *and* fold sizes differ by at
    most one overall.

    Args:
        subject_ids: subject identifiers (repeats, e.g. one per scan, are allowed).
        n_folds: number of folds, ``1 <= n_folds <= number of subjects``.
        seed: shuffling seed.
        strata: optional per-subject class (e.g. diagnosis) to stratify on.

    Returns:
        ``{subject_id: fold}`` with folds in ``0 .. n_folds - 1``.

    Raises:
        ValueError: if ``n_folds`` is out of range or a subject has no stratum.
    """
    subjects = sorted({str(s) for s in subject_ids})
    if not 1 <= n_folds <= len(subjects):
        raise ValueError(
            f"n_folds={n_folds} for {len(subjects)} subject(s): need 1 <= n_folds "
            "<= number of subjects so that no fold is empty."
        )
    rng = np.random.default_rng(seed)
    if strata is None:
        groups = [subjects]
    else:
        missing = [s for s in subjects if s not in strata]
        if missing:
            raise ValueError(
                f"strata has no class for subject(s) {missing[:10]}; give every "
                "subject a class or pass strata=None."
            )
        keys = sorted({strata[s] for s in subjects}, key=str)
        groups = [[s for s in subjects if strata[s] == k] for k in keys]
    order = [s for group in groups for s in rng.permutation(group).tolist()]
    return {s: i % n_folds for i, s in enumerate(order)}


def find_subject_leakage(df: pd.DataFrame) -> dict[str, list[int]]:
    """Return ``{subject_id: sorted folds}`` for every subject found in more than one fold.

    Args:
        df: a manifest table with ``subject_id`` and ``fold`` columns.
    """
    folds = df.groupby("subject_id", sort=True)["fold"].unique()
    return {str(s): sorted(int(f) for f in v) for s, v in folds.items() if len(v) > 1}


def check_no_subject_leakage(df: pd.DataFrame, *, name: str | None = None) -> None:
    """Raise if any subject has scans in two folds (train/validation leakage).

    Args:
        df: a manifest table with ``case_id``, ``subject_id`` and ``fold`` columns.
        name: manifest name for the message (defaults to ``df.attrs["manifest"]``).

    Raises:
        SubjectLeakageError: naming the manifest and each leaking subject with its folds and
            cases.
    """
    leaks = find_subject_leakage(df)
    if not leaks:
        return
    name = name or df.attrs.get("manifest", "manifest")
    lines = []
    for subject, folds in list(leaks.items())[:10]:
        cases = df.loc[df["subject_id"] == subject, "case_id"].astype(str).tolist()
        lines.append(f"subject {subject}: folds {folds} (cases {', '.join(cases)})")
    more = f"\n  ... {len(leaks) - 10} more" if len(leaks) > 10 else ""
    raise SubjectLeakageError(
        f"{name}: {len(leaks)} subject(s) appear in more than one fold:\n  "
        + "\n  ".join(lines)
        + more
        + "\nAll scans of a subject must share a fold: rebuild the manifest "
        "(`mrivol manifest build`) or reassign folds with assign_subject_folds."
    )


def check_split(
    train: Iterable[Mapping], evaluation: Iterable[Mapping], *, name: str = "split"
) -> None:
    """Refuse a train / evaluation split that leaks: shared subjects or synthetic evaluation data.

    The guard every datalist passes through (:func:`mrivol.data.to_datalist` calls it): a
    validation or test set must hold only real scans of subjects the model never saw. Synthetic
    or augmented samples (items with ``synthetic`` true, e.g. DCGAN volumes) may join a training
    set only.

    Args:
        train: training datalist items (dicts with ``subject_id``, optional ``synthetic``).
        evaluation: validation or test datalist items.
        name: what is being split, for the message (manifest and fold).

    Raises:
        DataLeakageError: naming up to ten offending subjects or cases and what to do.

    Examples:
        >>> check_split([{"subject_id": "s1"}], [{"subject_id": "s2"}])
        >>> check_split([{"subject_id": "s1"}], [{"subject_id": "s1"}])
        Traceback (most recent call last):
        ...
        mrivol.data.splits.DataLeakageError: split: 1 subject(s) in both training and ...
    """
    train, evaluation = list(train), list(evaluation)
    fake = [str(i.get("case_id", i.get("subject_id"))) for i in evaluation if i.get("synthetic")]
    if fake:
        raise DataLeakageError(
            f"{name}: {len(fake)} synthetic or augmented sample(s) in the evaluation set: "
            f"{', '.join(fake[:10])}. Synthetic samples may only be added to a training set "
            "(to_datalist(..., split='train', synthetic=...)); remove them from this split."
        )
    shared = sorted(
        {str(i["subject_id"]) for i in train} & {str(i["subject_id"]) for i in evaluation}
    )
    if shared:
        raise DataLeakageError(
            f"{name}: {len(shared)} subject(s) in both training and evaluation: "
            f"{', '.join(shared[:10])}. Split by subject (assign_subject_folds), never by scan."
        )

"""Tests for mrivol.data.splits: subject-level fold assignment and the leakage check."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from mrivol.data.splits import (
    SubjectLeakageError,
    assign_subject_folds,
    check_no_subject_leakage,
    find_subject_leakage,
)

SUBJECTS = [f"sub-{i:03d}" for i in range(23)]


@pytest.mark.parametrize(
    ("n_subjects", "n_folds"),
    [(23, 5), (10, 5), (7, 7), (3, 1), (100, 3)],
    ids=["23/5", "10/5", "loo", "one-fold", "100/3"],
)
def test_folds_are_balanced_and_cover_every_subject(n_subjects: int, n_folds: int):
    subjects = [f"s{i}" for i in range(n_subjects)]
    folds = assign_subject_folds(subjects, n_folds=n_folds, seed=0)
    assert set(folds) == set(subjects)
    counts = Counter(folds.values())
    assert sorted(counts) == list(range(n_folds))
    assert max(counts.values()) - min(counts.values()) <= 1


def test_same_seed_same_folds_regardless_of_order_and_repeats():
    a = assign_subject_folds(SUBJECTS, n_folds=5, seed=3)
    b = assign_subject_folds(list(reversed(SUBJECTS)) + SUBJECTS[:4], n_folds=5, seed=3)
    assert a == b


def test_different_seeds_give_different_folds():
    folds = [assign_subject_folds(SUBJECTS, n_folds=5, seed=s) for s in range(3)]
    assert folds[0] != folds[1] and folds[0] != folds[2]


@pytest.mark.parametrize(
    "counts",
    [{"AD": 9, "CN": 14, "MCI": 7}, {"AD": 3, "CN": 20}, {"x": 5}],
    ids=["three-classes", "imbalanced", "single-class"],
)
def test_stratified_folds_balance_each_class_and_the_total(counts: dict[str, int]):
    strata = {f"{c}-{i}": c for c, n in counts.items() for i in range(n)}
    folds = assign_subject_folds(strata, n_folds=4, seed=1, strata=strata)
    sizes = Counter(folds.values())
    assert max(sizes.values()) - min(sizes.values()) <= 1
    for cls in counts:
        per_fold = Counter(f for s, f in folds.items() if strata[s] == cls)
        per_fold = [per_fold.get(k, 0) for k in range(4)]
        assert max(per_fold) - min(per_fold) <= 1, (cls, per_fold)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_folds": 0}, "n_folds=0"),
        ({"n_folds": 24}, "n_folds=24 for 23"),
        ({"n_folds": 2, "strata": {"sub-000": "AD"}}, "no class for subject"),
    ],
    ids=["zero", "more-than-subjects", "missing-stratum"],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        assign_subject_folds(SUBJECTS, seed=0, **kwargs)


def _table(subject_folds: list[tuple[str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": [f"case{i}" for i in range(len(subject_folds))],
            "subject_id": [s for s, _ in subject_folds],
            "fold": [f for _, f in subject_folds],
        }
    )


@pytest.mark.parametrize(
    ("rows", "leaks"),
    [
        ([("a", 0), ("a", 0), ("b", 1)], {}),
        ([("a", 0), ("a", 2), ("b", 1)], {"a": [0, 2]}),
        ([("a", 0), ("a", 1), ("b", 1), ("b", 0), ("c", 1)], {"a": [0, 1], "b": [0, 1]}),
    ],
    ids=["clean-longitudinal", "one-leak", "two-leaks"],
)
def test_leakage_is_found_and_raised_with_subjects_and_cases(rows, leaks):
    df = _table(rows)
    df.attrs["manifest"] = "demo.csv"
    assert find_subject_leakage(df) == leaks
    if not leaks:
        check_no_subject_leakage(df)
        return
    with pytest.raises(SubjectLeakageError) as err:
        check_no_subject_leakage(df)
    msg = str(err.value)
    assert msg.startswith(f"demo.csv: {len(leaks)} subject(s)")
    for subject, folds in leaks.items():
        assert f"subject {subject}: folds {folds}" in msg
    assert "case0, case1" in msg


def test_assigned_folds_never_leak():
    scans = [(s, k) for s in SUBJECTS for k in range(3)]  # three sessions per subject
    fold_of = assign_subject_folds([s for s, _ in scans], n_folds=5, seed=0)
    check_no_subject_leakage(_table([(s, fold_of[s]) for s, _ in scans]))

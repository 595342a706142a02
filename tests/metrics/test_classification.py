"""Classification metrics against scikit-learn (test-only reference) and report files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import sklearn.metrics as skm  # noqa: E402  the pinned dev reference: missing fails, never skips

from mrivol.metrics import (
    classification_report,
    confusion_matrix,
    roc_auc_ovr,
    write_classification_report,
)


def _random_case(seed: int, n_classes: int, absent_pred: bool, n: int = 120):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y_true]
    if absent_pred:
        logits[:, -1] = -10.0  # the last class is never predicted
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba = np.round(proba, 2)  # creates tied scores
    return y_true, proba.argmax(axis=1), proba


CASES = [
    pytest.param(0, 2, False, id="binary"),
    pytest.param(1, 3, False, id="3-classes"),
    pytest.param(2, 5, False, id="5-classes"),
    pytest.param(3, 4, True, id="4-classes-one-never-predicted"),
    pytest.param(4, 3, True, id="3-classes-one-never-predicted"),
]


@pytest.mark.parametrize(("seed", "k", "absent"), CASES)
def test_matches_sklearn(seed, k, absent):
    y_true, y_pred, proba = _random_case(seed, k, absent)
    if absent:
        assert k - 1 not in set(y_pred.tolist())
    labels = list(range(k))
    r = classification_report(y_true, y_pred, probabilities=proba)
    np.testing.assert_array_equal(r.confusion, skm.confusion_matrix(y_true, y_pred, labels=labels))
    assert r.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert r.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    p, rec, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    np.testing.assert_allclose(r.precision, p)
    np.testing.assert_allclose(r.recall, rec)
    np.testing.assert_allclose(r.f1, f1)
    np.testing.assert_array_equal(r.support, support)
    # specificity = recall of the negative class in one-vs-rest
    spec = [skm.recall_score(y_true != c, y_pred != c) for c in labels]
    np.testing.assert_allclose(r.specificity, spec)
    auc = [skm.roc_auc_score(y_true == c, proba[:, c]) for c in labels]
    np.testing.assert_allclose(r.roc_auc, auc, rtol=1e-12)
    if k == 2:
        assert r.roc_auc[1] == pytest.approx(skm.roc_auc_score(y_true, proba[:, 1]))
    else:
        proba_norm = proba / proba.sum(axis=1, keepdims=True)  # sklearn's ovr wants rows sum 1
        ref_macro = skm.roc_auc_score(y_true, proba_norm, multi_class="ovr", labels=labels)
        assert roc_auc_ovr(y_true, proba_norm).mean() == pytest.approx(ref_macro)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true:UserWarning")
def test_class_absent_from_truth():
    y_true = np.array([0, 0, 1, 1, 0])
    y_pred = np.array([0, 2, 1, 1, 0])  # class 2 only predicted, never true
    proba = np.eye(3)[y_pred] * 0.8 + 0.2 / 3
    r = classification_report(y_true, y_pred, probabilities=proba)
    assert r.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert np.isnan(r.roc_auc[2]) and not np.isnan(r.roc_auc[:2]).any()
    assert r.roc_auc_macro == pytest.approx(np.mean(r.roc_auc[:2]))
    assert r.recall[2] == 0.0 and r.precision[2] == 0.0


def test_probabilities_only_uses_argmax_and_names():
    proba = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    r = classification_report([0, 1, 1], probabilities=proba, class_names=["CN", "AD"])
    assert r.confusion.tolist() == [[1, 0], [1, 1]]
    assert [row["class"] for row in r.per_class_rows()] == ["CN", "AD"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"y_true": [0, 1]}, "y_pred, probabilities", id="nothing-to-score"),
        pytest.param({"y_true": [0, 1], "y_pred": [0]}, "samples", id="length"),
        pytest.param({"y_true": [0, 3], "y_pred": [0, 1], "num_classes": 2}, "num_classes", id="k"),
        pytest.param({"y_true": [0, 1], "y_pred": [0.5, 1]}, "integer", id="float-labels"),
        pytest.param(
            {"y_true": [0, 1], "y_pred": [0, 1], "num_classes": 2, "class_names": ["a", "b", "c"]},
            "class_names",
            id="names",
        ),
    ],
)
def test_invalid_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        classification_report(**kwargs)


def test_confusion_matrix_counts():
    assert confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], num_classes=4).tolist() == [
        [1, 1, 0, 0],
        [0, 1, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
    ]


def test_write_report_files_atomically(tmp_path):
    y_true, y_pred, proba = _random_case(5, 3, False)
    r = classification_report(y_true, y_pred, probabilities=proba, class_names=["a", "b", "c"])
    out = tmp_path / "reports"
    paths = write_classification_report(r, out, prefix="fold0_")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    assert all(p.name.startswith("fold0_") for p in paths.values())  # and no temp leftovers
    with open(paths["per_class"]) as f:
        rows = list(csv.DictReader(f))
    assert [row["class"] for row in rows] == ["a", "b", "c"]
    assert float(rows[1]["f1"]) == pytest.approx(r.f1[1])
    with open(paths["summary"]) as f:
        summary = {row["metric"]: float(row["value"]) for row in csv.DictReader(f)}
    assert summary["accuracy"] == pytest.approx(r.accuracy)
    with open(paths["confusion_csv"]) as f:
        cm = [[int(v) for k, v in row.items() if k != "true"] for row in csv.DictReader(f)]
    assert cm == r.confusion.tolist()
    assert paths["confusion_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # rewriting replaces the files in place
    write_classification_report(r, out, prefix="fold0_")
    assert len(list(out.iterdir())) == 4

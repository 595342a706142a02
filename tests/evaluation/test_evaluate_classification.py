"""``mrivol evaluate --bundle ad_cls``: a test-set report logged to the run, leakage refused.

One tiny ad_cls run (one epoch on the six tiny AD phantoms) is shared by the module; the test
manifests are phantoms of another seed with their own subject ids, plus, where a test needs it,
one subject of the training manifest or a synthetic row.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from mrivol.cli import main
from mrivol.data import DataLeakageError, manifest_hash, to_datalist
from mrivol.evaluation.evaluate import evaluate
from mrivol.evaluation.evaluate_classification import (
    ARTIFACT_PATH,
    check_test_manifest,
    is_classification_bundle,
)

CLASSES = ("CN", "MCI", "AD")


@pytest.fixture(scope="module")
def trained(tiny_ad_run):
    """``(TrainResult, tracking uri)``: one epoch of ad_cls on the tiny phantoms (conftest)."""
    return tiny_ad_run


@pytest.fixture(scope="module")
def new_subjects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three phantoms (one per class) of another seed, subject ids ``new-sub-*``."""
    from mrivol.synth.ad_phantoms import generate_ad_phantoms

    manifest = generate_ad_phantoms(
        tmp_path_factory.mktemp("ad_test"), subjects=3, sessions=1, folds=1, seed=7
    )
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    for col in ("case_id", "subject_id"):
        df[col] = "new-" + df[col]
    df["dataset_root"] = str(manifest.parent)
    out = manifest.parent / "test.csv"
    df.to_csv(out, index=False)
    return out


def _with_row(test: Path, source: Path, out: Path, **changes: str) -> tuple[Path, str]:
    """``test`` plus the first row of ``source`` (``changes`` applied); its subject id."""
    row = pd.read_csv(source, dtype=str, keep_default_na=False).head(1).copy()
    row["dataset_root"] = str((source.parent / row["dataset_root"].iloc[0]).resolve())
    for col, value in changes.items():
        row[col] = value
    df = pd.concat([pd.read_csv(test, dtype=str, keep_default_na=False), row])
    df.to_csv(out, index=False)
    return out, str(row["subject_id"].iloc[0])


@pytest.fixture(scope="module")
def overlapping(new_subjects: Path, tiny_ad_manifest: Path) -> tuple[Path, str]:
    """The new subjects plus one subject the run trained (or validated) on, and its id."""
    return _with_row(new_subjects, tiny_ad_manifest, new_subjects.parent / "overlap.csv")


@pytest.fixture(scope="module")
def new_subject_report(trained, new_subjects: Path, tmp_path_factory: pytest.TempPathFactory):
    """``(metrics, report folder)`` of the run scored on the new subjects."""
    result, uri = trained
    out = tmp_path_factory.mktemp("eval_new")
    metrics = evaluate(bundle="ad_cls", run=result.run_id, data=str(new_subjects), out=out,
                       tracking_uri=uri)  # fmt: skip
    return metrics, out


@pytest.mark.parametrize(
    ("bundle", "expected"),
    [("ad_cls", True), ("brats_seg", False), ("brats_multitask", False), ("dcgan_aug", False)],
    ids=["ad_cls", "brats_seg", "brats_multitask", "dcgan_aug"],
)
def test_classification_bundles_are_told_by_their_pred_output(bundle: str, expected: bool):
    assert is_classification_bundle(bundle) is expected


def test_new_subjects_report_is_logged_to_the_run(trained, new_subject_report):
    result, uri = trained
    metrics, out = new_subject_report
    client = mlflow.MlflowClient(uri)
    logged = client.get_run(result.run_id).data.metrics
    for name in ("test_accuracy", "test_balanced_accuracy", "test_macro_f1"):
        assert 0.0 <= metrics[name] <= 1.0 and logged[name] == pytest.approx(metrics[name])
    for cls in CLASSES:
        for name in ("precision", "recall", "specificity", "f1", "roc_auc"):
            assert logged[f"test_{name}_{cls}"] == pytest.approx(metrics[f"test_{name}_{cls}"])
    assert logged["test_n_cases"] == 3
    # balanced accuracy is the mean per-class recall of the per-case table
    rows = pd.read_csv(out / "test_per_case.csv")
    recalls = [(g["pred"] == c).mean() for c, g in rows.groupby("label")]
    assert metrics["test_balanced_accuracy"] == pytest.approx(float(np.mean(recalls)))
    artifacts = {a.path for a in client.list_artifacts(result.run_id, ARTIFACT_PATH)}
    expected = {
        "classification_summary.csv",
        "classification_per_class.csv",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "test_per_case.csv",
    }
    assert {f"{ARTIFACT_PATH}/{name}" for name in expected} <= artifacts
    assert all((out / name).is_file() for name in expected)
    tags = client.get_run(result.run_id).data.tags
    assert tags["test_subject_overlap"] == "none"
    assert tags["test_manifest_sha256"] == manifest_hash(tags["test_manifest"])


def test_every_test_case_gets_well_formed_probabilities(new_subject_report, new_subjects):
    _, out = new_subject_report
    rows = pd.read_csv(out / "test_per_case.csv")
    assert set(rows["case_id"]) == {i["case_id"] for i in to_datalist(new_subjects, fold=0,
                                                                     split="all")}  # fmt: skip
    probs = rows[[f"p_{c}" for c in CLASSES]].to_numpy()
    assert np.isfinite(probs).all() and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (rows["pred"] == [CLASSES[k] for k in probs.argmax(axis=1)]).all()


def test_training_subject_in_the_test_set_is_refused(trained, overlapping, tiny_ad_manifest):
    result, uri = trained
    manifest, subject = overlapping
    with pytest.raises(DataLeakageError, match=subject) as err:
        evaluate(bundle="ad_cls", run=result.run_id, data=str(manifest), tracking_uri=uri)
    assert str(manifest) in str(err.value) and str(tiny_ad_manifest.resolve()) in str(err.value)
    assert "new-sub" not in str(err.value)  # only the shared subject is named


def test_cli_refuses_overlap_with_a_non_zero_exit(trained, overlapping, monkeypatch, capsys):
    result, uri = trained
    manifest, subject = overlapping
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    code = main(["evaluate", "--bundle", "ad_cls", "--run", result.run_id, "--data",
                 str(manifest)])  # fmt: skip
    assert code != 0
    assert subject in capsys.readouterr().err


def test_allow_subject_overlap_scores_and_tags_the_run(trained, overlapping, tmp_path):
    result, uri = trained
    manifest, subject = overlapping
    metrics = evaluate(bundle="ad_cls", run=result.run_id, data=str(manifest), out=tmp_path,
                       tracking_uri=uri, allow_subject_overlap=True)  # fmt: skip
    assert metrics["test_n_cases"] == 4
    rows = pd.read_csv(tmp_path / "test_per_case.csv")
    assert subject in "".join(rows["case_id"])
    tags = mlflow.MlflowClient(uri).get_run(result.run_id).data.tags
    assert tags["test_subject_overlap"] == subject


@pytest.mark.parametrize("allow", [False, True], ids=["default", "allow-subject-overlap"])
def test_synthetic_test_case_is_always_refused(trained, new_subjects, tmp_path, allow: bool):
    result, uri = trained
    manifest, _ = _with_row(new_subjects, new_subjects, tmp_path / "synthetic.csv",
                            case_id="gan-0", subject_id="gan-0", synthetic="1")  # fmt: skip
    with pytest.raises(DataLeakageError, match="synthetic.*gan-0"):
        evaluate(bundle="ad_cls", run=result.run_id, data=str(manifest), tracking_uri=uri,
                 allow_subject_overlap=allow)  # fmt: skip


def test_changed_training_manifest_cannot_vouch_for_the_test_set(
    tiny_ad_manifest: Path, new_subjects: Path, tmp_path: Path
):
    copy = tmp_path / "train.csv"
    df = pd.read_csv(tiny_ad_manifest, dtype=str, keep_default_na=False)
    df["dataset_root"] = str(tiny_ad_manifest.parent)
    df.to_csv(copy, index=False)
    logged = manifest_hash(copy)
    df.drop(index=0).to_csv(copy, index=False)  # a subject removed after training
    with pytest.raises(DataLeakageError, match="changed since training"):
        check_test_manifest(new_subjects, training=copy, fold=0, training_hash=logged)
    assert (
        check_test_manifest(
            new_subjects, training=copy, fold=0, training_hash=logged, allow_subject_overlap=True
        )
        == []
    )


def test_checkpoint_without_a_known_training_manifest_is_refused(new_subjects: Path):
    with pytest.raises(DataLeakageError, match="unknown"):
        check_test_manifest(new_subjects, training=None, fold=0)

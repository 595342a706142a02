"""``mrivol cv`` end to end on the tiny cases: two folds of two epochs, killed during fold 1's
training and run again, then the fold ensemble on new scans and on a test manifest.

What a user relies on: one parent run with one child per fold; every case predicted once, by
the fold model that did not train on it; the same command continues (fold 0 not retrained,
fold 1 resumed in its own run) and, once done, only re-reads; pooled metrics that match the
per-case table; post-processing that never lowers the OOF score.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
import time
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pytest

from mrivol.cli import main
from mrivol.data import to_datalist
from mrivol.tracking.cv_runs import CV_TAG, FOLD_TAG, PARENT_TAG
from tests.conftest import mrivol_process, run_mrivol, tiny_set_args


def _cv_args(manifest: Path) -> list[str]:
    return [
        "cv",
        "--bundle",
        "brats_seg",
        "--folds",
        "0,1",
        "--epochs",
        "2",
        "--data",
        str(manifest),
        *tiny_set_args(),
    ]


@pytest.fixture(scope="module")
def cv_run(tiny_brats_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The CV killed (SIGKILL) once fold 1 has a resume checkpoint, run again, then once more."""
    import os

    root = tmp_path_factory.mktemp("cv")
    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", MRIVOL_RUNS=str(root / "runs")
    )
    proc = mrivol_process(_cv_args(tiny_brats_manifest), env)
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if list((root / "runs").glob("brats_seg-unet-fold1-*/checkpoints/resume.pt")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    first, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed in fold 1:\n{first[-3000:]}"
    second = run_mrivol(_cv_args(tiny_brats_manifest), env)
    third = run_mrivol(_cv_args(tiny_brats_manifest), env)
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("brats_seg")
    parents = client.search_runs([exp.experiment_id], filter_string=f"tags.`{CV_TAG}` = 'parent'")
    return {
        "env": env,
        "root": root,
        "client": client,
        "exp": exp,
        "parents": parents,
        "outputs": (first, second, third),
        "manifest": tiny_brats_manifest,
    }


@pytest.fixture(scope="module")
def parent(cv_run):
    assert len(cv_run["parents"]) == 1, "the re-runs opened another parent"
    return cv_run["parents"][0]


def _children(cv_run, parent) -> list:
    return cv_run["client"].search_runs(
        [cv_run["exp"].experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    )


def test_one_parent_with_one_finished_child_per_fold(cv_run, parent):
    children = _children(cv_run, parent)
    assert sorted(int(c.data.tags[FOLD_TAG]) for c in children) == [0, 1]
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.info.run_name.startswith("brats_seg-unet-cv-")
    assert parent.info.status == "FINISHED"


def test_rerun_continues_fold0_skipped_fold1_resumed(cv_run, parent):
    first, second, third = cv_run["outputs"]
    assert "[fold 0: 1 of 2] training" in first and "[fold 1: 2 of 2] training" in first
    assert "[fold 0: 1 of 2] done earlier" in second
    assert "was interrupted: resuming it" in second and "resuming brats_seg / unet" in second
    assert f"parent run {parent.info.run_name} (continued)" in second
    assert third.count("done earlier") == 2 and "training brats_seg" not in third
    client = cv_run["client"]
    for child in _children(cv_run, parent):  # each fold: epochs 1 and 2 logged once each
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_mean_dice")]
        assert sorted(steps) == [1, 2], (child.data.tags[FOLD_TAG], steps)


def _per_case(cv_run, parent) -> list[dict]:
    path = cv_run["root"] / "runs" / parent.info.run_name / "oof_per_case.csv"
    with path.open() as f:
        return list(csv.DictReader(f))


def test_every_case_is_predicted_once_by_the_fold_that_did_not_train_on_it(cv_run, parent):
    manifest, client = cv_run["manifest"], cv_run["client"]
    expected = {d["case_id"]: k for k in (0, 1) for d in to_datalist(manifest, fold=k, split="val")}
    rows = _per_case(cv_run, parent)
    assert {r["case"] for r in rows} == set(expected)
    assert all(sum(r["case"] == c and r["region"] == "wt" for r in rows) == 1 for c in expected)
    oof = cv_run["root"] / "runs" / parent.info.run_name / "oof"
    children = {int(c.data.tags[FOLD_TAG]): c for c in _children(cv_run, parent)}
    for case, fold in expected.items():
        assert {int(r["fold"]) for r in rows if r["case"] == case} == {fold}
        record = json.loads((oof / f"fold{fold}.json").read_text())
        assert case in record["cases"] and record["run_id"] == children[fold].info.run_id
        trained_fold = int(client.get_run(record["run_id"]).data.params["fold"])
        trained_on = {d["case_id"] for d in to_datalist(manifest, fold=trained_fold, split="train")}
        assert case not in trained_on
    # the OOF maps lie on the original grid, probabilities stored compactly (uint8, scale 1/255)
    case = next(iter(expected))
    t1 = nib.load(to_datalist(manifest, fold=expected[case], split="val")[0]["image"][0])
    seg = nib.load(oof / f"{case}_seg.nii.gz")
    prob = nib.load(oof / f"{case}_prob_wt.nii.gz")
    assert seg.shape == t1.shape and np.allclose(seg.affine, t1.affine, atol=1e-4)
    assert prob.get_data_dtype() == np.uint8 and 0.0 <= prob.get_fdata().max() <= 1.0 + 1e-6


def test_pooled_metrics_match_the_per_case_table(cv_run, parent):
    rows = _per_case(cv_run, parent)
    m = parent.data.metrics
    assert m["cv_mean_dice"] == pytest.approx(np.mean([float(r["dice"]) for r in rows]))
    for region in ("tc", "wt", "et"):
        values = [float(r["lesionwise_dice"]) for r in rows if r["region"] == region]
        assert m[f"cv_lesionwise_dice_{region}"] == pytest.approx(np.mean(values))
    by_fold = [np.mean([float(r["dice"]) for r in rows if r["fold"] == k]) for k in ("0", "1")]
    assert m["cv_fold_mean_dice_mean"] == pytest.approx(np.mean(by_fold))
    assert m["cv_fold_mean_dice_std"] == pytest.approx(np.std(by_fold, ddof=1))
    history = cv_run["client"].get_metric_history(parent.info.run_id, "cv_fold_mean_dice")
    assert {h.step: h.value for h in history} == pytest.approx(dict(enumerate(by_fold)))


def test_postprocessing_is_logged_and_never_lowers_the_oof_score(cv_run, parent):
    folder = cv_run["root"] / "runs" / parent.info.run_name
    pp = json.loads((folder / "postprocessing.json").read_text())
    assert pp["oof_score_after"] >= pp["oof_score_before"]
    assert parent.data.metrics["cv_pp_score_after"] == pytest.approx(pp["oof_score_after"])
    assert pp["score"] == "lesionwise_dice" and pp["n_cases"] == 4
    artifacts = {a.path for a in cv_run["client"].list_artifacts(parent.info.run_id)}
    assert {"postprocessing.json", "oof_per_case.csv", "oof_boxplot.png"} <= artifacts


def test_ensemble_inference_with_tta_and_mc_dropout(cv_run, parent, tmp_path):
    scans = tmp_path / "new"  # a folder of two cases' scans (no labels), as a user brings them
    scans.mkdir()
    items = to_datalist(cv_run["manifest"], fold=0, split="all")[:2]
    for item in items:
        for path in item["image"]:
            shutil.copy(path, scans / Path(path).name)
    out = tmp_path / "pred"
    text = run_mrivol(
        [
            "infer",
            "--bundle",
            "brats_seg",
            "--run",
            parent.info.run_id,
            "--input",
            str(scans),
            "--out",
            str(out),
            "--tta",
            "--mc-samples",
            "3",
        ],
        cv_run["env"],
    )
    assert "ensemble of 2 fold models" in text
    assert "2 MC sample(s), mirrored" in text and "1 MC sample(s), mirrored" in text
    for item in items:
        case = item["case_id"]
        seg = nib.load(out / f"{case}_seg.nii.gz")
        t1 = nib.load(item["image"][0])
        assert seg.shape == t1.shape and np.allclose(seg.affine, t1.affine, atol=1e-4)
        assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 4}
        for kind in ("prob", "entropy", "mi", "foldvar"):
            assert (out / f"{case}_{kind}_wt.nii.gz").is_file(), (case, kind)
        mi = nib.load(out / f"{case}_mi_wt.nii.gz").get_fdata()
        entropy = nib.load(out / f"{case}_entropy_wt.nii.gz").get_fdata()
        assert (mi >= 0).all() and (mi <= entropy + 1e-6).all()
    assert not (out / "folds").exists() and (out / "volumes.csv").is_file()


def test_evaluate_a_cv_parent_on_a_test_manifest(cv_run, parent):
    text = run_mrivol(
        [
            "evaluate",
            "--bundle",
            "brats_seg",
            "--run",
            parent.info.run_id,
            "--data",
            str(cv_run["manifest"]),
            "--mc-samples",
            "1",
        ],
        cv_run["env"],
    )
    assert "ensemble + post-processing" in text and "mean of the fold models" in text
    m = cv_run["client"].get_run(parent.info.run_id).data.metrics
    folds = [m["test_fold0_mean_dice"], m["test_fold1_mean_dice"]]
    assert m["test_fold_mean_dice_mean"] == pytest.approx(np.mean(folds))
    assert m["test_best_fold_mean_dice"] == pytest.approx(max(folds))
    assert {"test_raw_mean_dice", "test_mean_dice", "test_lesionwise_dice_wt"} <= set(m)


def _in_store(cv_run, monkeypatch) -> None:
    for key in ("MLFLOW_TRACKING_URI", "MRIVOL_RUNS"):
        monkeypatch.setenv(key, cv_run["env"][key])


def test_compare_lists_the_cross_validation(cv_run, parent, monkeypatch, capsys):
    _in_store(cv_run, monkeypatch)
    assert main(["compare", "--experiment", "brats_seg", "--cv", "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert parent.info.run_name in text and "cv_mean_dice" in text


def test_unknown_folds_are_named(cv_run, monkeypatch, capsys):
    _in_store(cv_run, monkeypatch)
    args = ["cv", "--folds", "0,7", "--epochs", "2", "--data", str(cv_run["manifest"])]
    assert main(args) == 2
    assert "has no fold(s) [7]" in capsys.readouterr().err

"""brats_seg inference and evaluation with MC dropout.

Fast (untrained UNet weights, the pipeline only): NIfTI outputs exactly on an LPS 1x1x1.5 mm
input's grid, bounded entropy / MI maps, the volume report, QU-BraTS from the written maps.
Slow (a model trained here on the tiny cases, ~1-3 min on 2 cores): the tumour found, entropy
higher on tumour borders than in tumour cores, `evaluate` logging its reports into the run.
"""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from monai.bundle import ConfigParser
from scipy import ndimage

from mrivol.evaluation.evaluate import evaluate
from mrivol.evaluation.seg_evaluation import evaluate_segmentations
from mrivol.inference import infer
from mrivol.metrics import brats_region_masks, dice_score
from mrivol.paths import bundle_dir
from tests.conftest import MODALITIES, TINY_OVERRIDES, train_tiny_brats, write_tiny_brats_case

MC_SAMPLES = 6
MAPS = ("prob", "entropy", "mi")
REGIONS = ("tc", "wt", "et")
# 4 optimiser steps per epoch (one case, four patches each) and validation only at the end:
# 25 epochs reach a validation Dice of ~0.95 on the tiny cases
TRAIN_OVERRIDES = {
    **TINY_OVERRIDES,
    "learning_rate": 5e-3,
    "batch_size": 1,
    "num_samples": 4,
    "val_interval": 25,
}
TRAIN_EPOCHS = 25


@pytest.fixture(scope="module")
def trained(tiny_brats_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """Train brats_seg on the tiny cases; return (result, tracking uri)."""
    return train_tiny_brats(tmp_path_factory, tiny_brats_manifest, epochs=TRAIN_EPOCHS,
                            **TRAIN_OVERRIDES)  # fmt: skip


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle's UNet with seeded random weights, saved as a checkpoint file."""
    parser = ConfigParser()
    parser.read_config(
        [bundle_dir("brats_seg") / "configs" / f for f in ("common.yaml", "networks/unet.yaml")]
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)
    return path


def _resample_lps(src: nib.Nifti1Image, *, order: int) -> nib.Nifti1Image:
    """``src`` resampled onto an LPS-oriented 1 x 1 x 1.5 mm grid covering the same box."""
    affine = np.array([[-1.0, 0, 0, 59.0], [0, -1.0, 0, 49.0], [0, 0, 1.5, -40.0], [0, 0, 0, 1.0]])
    shape = (118, 118, 63)
    index = np.indices(shape, dtype=np.float64).reshape(3, -1)
    to_src = np.linalg.inv(src.affine) @ affine
    coords = to_src[:3, :3] @ index + to_src[:3, 3:]
    data = ndimage.map_coordinates(
        np.asarray(src.dataobj, dtype=np.float32), coords, order=order, mode="nearest"
    ).reshape(shape)
    dtype = np.uint8 if order == 0 else np.float32
    out = nib.Nifti1Image(data.astype(dtype), affine)
    out.set_qform(affine, code=1)
    return out


@pytest.fixture(scope="module")
def lps_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny case (unseen seed) re-gridded to LPS 1 x 1 x 1.5 mm, in a flat folder."""
    root = tmp_path_factory.mktemp("lps")
    case_dir = write_tiny_brats_case(root / "src", "lps_000", seed=11)
    out = root / "scans"
    out.mkdir()
    for name in (*MODALITIES, "seg"):
        src = nib.load(case_dir / f"lps_000_{name}.nii.gz")
        img = _resample_lps(src, order=0 if name == "seg" else 1)
        nib.save(img, out / f"lps_000_{name}.nii.gz")
    assert nib.aff2axcodes(nib.load(out / "lps_000_t1.nii.gz").affine) == ("L", "P", "S")
    return out


def _infer(checkpoint: Path, scans: Path, out: Path) -> Path:
    """``mrivol infer --mc-samples 6`` on ``scans`` (tiny-data overrides of the profile)."""
    written = infer(
        bundle="brats_seg",
        run=str(checkpoint),
        input=scans,
        out=out,
        mc_samples=MC_SAMPLES,
        mc_batch_size=4,
        submission=True,
        profile="cpu",
        overrides=TINY_OVERRIDES,
    )
    assert [p.name for p in written] == ["lps_000_seg.nii.gz"]
    return out


@pytest.fixture(scope="module")
def inferred(untrained_checkpoint, lps_case: Path, tmp_path_factory) -> Path:
    """Outputs of the untrained network on the LPS case: the pipeline, not the model."""
    return _infer(untrained_checkpoint, lps_case, tmp_path_factory.mktemp("pred"))


@pytest.fixture(scope="module")
def inferred_trained(trained, lps_case: Path, tmp_path_factory) -> Path:
    """Outputs of the trained network on the LPS case."""
    result, _ = trained
    checkpoint = result.output_dir / "checkpoints" / "model.pt"
    return _infer(checkpoint, lps_case, tmp_path_factory.mktemp("pred_trained"))


@pytest.mark.parametrize(
    "name",
    ["seg", *(f"{m}_{r}" for m in MAPS for r in REGIONS)],
    ids=lambda n: n,
)
def test_outputs_lie_exactly_on_the_input_grid(inferred: Path, lps_case: Path, name: str):
    ref = nib.load(lps_case / "lps_000_t1.nii.gz")
    out = nib.load(inferred / f"lps_000_{name}.nii.gz")
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.affine, ref.affine, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_label_map_finds_the_tumour(inferred_trained: Path, lps_case: Path):
    pred = np.asarray(nib.load(inferred_trained / "lps_000_seg.nii.gz").dataobj)
    truth = np.asarray(nib.load(lps_case / "lps_000_seg.nii.gz").dataobj)
    assert set(np.unique(pred)) <= {0, 1, 2, 4}
    wt_pred = brats_region_masks(pred)["WT"]
    wt_true = brats_region_masks(truth)["WT"]
    assert dice_score(wt_pred, wt_true) > 0.8  # measured 0.93


def test_submission_file_is_the_label_map_in_2023_labels(inferred: Path):
    seg = np.asarray(nib.load(inferred / "lps_000_seg.nii.gz").dataobj)
    submitted = nib.load(inferred / "submission" / "lps_000.nii.gz")
    expected = np.where(seg == 4, 3, seg)
    np.testing.assert_array_equal(np.asarray(submitted.dataobj), expected)
    np.testing.assert_allclose(submitted.affine, nib.load(inferred / "lps_000_seg.nii.gz").affine)


def test_uncertainty_maps_are_bounded_entropies(inferred: Path):
    for region in REGIONS:
        entropy = np.asarray(nib.load(inferred / f"lps_000_entropy_{region}.nii.gz").dataobj)
        mi = np.asarray(nib.load(inferred / f"lps_000_mi_{region}.nii.gz").dataobj)
        assert entropy.min() >= 0 and entropy.max() <= math.log(2) + 1e-5
        assert mi.min() >= 0 and np.all(mi <= entropy + 1e-5)
        assert mi.max() > 0  # dropout really sampled


@pytest.mark.slow
def test_entropy_higher_on_tumour_borders_than_in_cores(inferred_trained: Path, lps_case: Path):
    """Whole-tumour predictive entropy: the +-2-voxel band around the true boundary vs the
    interior more than 8 mm inside it (the lesion is a 21 mm-radius oedema sphere)."""
    truth = brats_region_masks(np.asarray(nib.load(lps_case / "lps_000_seg.nii.gz").dataobj))
    wt = truth["WT"]
    entropy = np.asarray(nib.load(inferred_trained / "lps_000_entropy_wt.nii.gz").dataobj)
    border = ndimage.binary_dilation(wt, iterations=2) & ~ndimage.binary_erosion(wt, iterations=2)
    distance = ndimage.distance_transform_edt(wt, sampling=(1.0, 1.0, 1.5))
    core = distance > 8.0
    assert core.sum() > 100 and border.sum() > 100
    assert entropy[border].mean() > 2 * entropy[core].mean()


def test_volume_report(inferred: Path):
    df = pd.read_csv(inferred / "volumes.csv")
    assert list(df["case"]) == ["lps_000"]
    row = df.iloc[0]
    pred = brats_region_masks(np.asarray(nib.load(inferred / "lps_000_seg.nii.gz").dataobj))
    assert row["wt_ml"] == pytest.approx(pred["WT"].sum() * 1.5 / 1000)  # 1 x 1 x 1.5 mm voxels
    assert row["et_ml"] <= row["tc_ml"] <= row["wt_ml"]
    assert row["entropy_wt_mean"] >= row["mi_wt_mean"] >= 0


def test_evaluate_seg_scores_qu_brats_from_the_written_maps(inferred: Path, lps_case, tmp_path):
    result = evaluate_segmentations(inferred, lps_case, out=tmp_path / "metrics.csv")
    assert not result.failed
    rows = {r["region"]: r for r in result.rows}
    assert set(rows) == {"ET", "TC", "WT"}
    assert all(r["qu_source"] == "entropy" and 0 <= r["qu_score"] <= 1 for r in rows.values())
    assert (tmp_path / "metrics_boxplot.png").stat().st_size > 0


@pytest.mark.slow
def test_evaluate_logs_reports_into_the_training_run(trained, tmp_path):
    result, uri = trained
    metrics = evaluate(
        bundle="brats_seg",
        run=result.run_id,
        out=tmp_path,
        tracking_uri=uri,
        mc_samples=3,
        overrides=TRAIN_OVERRIDES,
    )
    assert metrics["dice_wt"] > 0.8 and "qu_score_wt" in metrics
    client = mlflow.MlflowClient(uri)
    logged = client.get_run(result.run_id).data.metrics
    assert logged["eval_dice_wt"] == pytest.approx(metrics["dice_wt"])
    assert logged["eval_mean_dice"] == pytest.approx(metrics["val_mean_dice"])
    names = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    expected = {
        "seg_metrics.csv",
        "seg_metrics_summary.csv",
        "seg_metrics_boxplot.png",
        "overlay_best.png",
        "overlay_median.png",
        "overlay_worst.png",
        "uncertainty.png",
        "val_per_case.csv",
    }
    assert expected <= {Path(n).name for n in names}

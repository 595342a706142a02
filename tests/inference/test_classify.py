"""``mrivol infer --bundle ad_cls``: probabilities, Grad-CAM++ maps on each scan's own grid.

One tiny ad_cls run (one epoch, the tiny sizes of tests/bundles/test_ad_cls.py) classifies
five new AD phantoms through the command line: one stored LPS at 1 x 1 x 1.2 mm, one corrupt.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel.processing import resample_from_to

from mrivol.inference.classify import bundle_task, cam_to_input_grid, main_classify
from mrivol.synth.ad_phantoms import generate_ad_phantoms

LPS_CASE, CORRUPT_CASE = "sub-0000_ses-01", "sub-0004_ses-01"


@pytest.fixture(scope="module")
def trained(tiny_ad_run):
    """``(TrainResult, tracking uri)``: one epoch of ad_cls on the tiny phantoms (conftest)."""
    return tiny_ad_run


def _to_lps(path: Path, zooms: tuple[float, float, float] = (1.0, 1.0, 1.2)) -> None:
    """Rewrite a scan stored LPS (i -> left, j -> posterior) at ``zooms`` mm, same field of view."""
    img = nib.load(path)
    extent = np.asarray(img.shape) * np.asarray(img.header.get_zooms()[:3])
    corner = img.affine @ np.r_[np.asarray(img.shape) - 1, 1.0]  # R, A, S-most voxel centre
    affine = np.diag([-zooms[0], -zooms[1], zooms[2], 1.0])
    affine[:3, 3] = [corner[0], corner[1], img.affine[2, 3]]
    shape = tuple(int(e // z) for e, z in zip(extent, zooms, strict=True))
    out = resample_from_to(img, (shape, affine), order=1)
    nib.save(nib.Nifti1Image(out.get_fdata(dtype=np.float32), affine), path)


@pytest.fixture(scope="module")
def new_scans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five new phantom subjects: the first stored LPS at 1 x 1 x 1.2 mm, the last truncated."""
    manifest = generate_ad_phantoms(
        tmp_path_factory.mktemp("new_ad"), subjects=5, sessions=1, folds=1, seed=11
    )
    rows = pd.read_csv(manifest, dtype=str).set_index("case_id")
    root = manifest.parent
    _to_lps(root / rows.at[LPS_CASE, "t1"])
    corrupt = root / rows.at[CORRUPT_CASE, "t1"]
    data = corrupt.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])  # a truncated gzip stream
    return manifest


@pytest.fixture(scope="module")
def inferred(trained, new_scans: Path, tmp_path_factory: pytest.TempPathFactory):
    """``mrivol infer --bundle ad_cls`` in a subprocess; (completed process, out dir, manifest)."""
    result, uri = trained
    out = tmp_path_factory.mktemp("cls_out")
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = uri
    env["MRIVOL_RUNS"] = str(Path(uri.removeprefix("sqlite:///")).parent / "runs")
    args = ["infer", "--bundle", "ad_cls", "--run", result.run_id, "--input", str(new_scans)]
    proc = subprocess.run(
        [sys.executable, "-m", "mrivol.cli", *args, "--out", str(out), "--mc-samples", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, out, new_scans


def _scan_paths(manifest: Path) -> dict[str, Path]:
    rows = pd.read_csv(manifest, dtype=str)
    return {r.case_id: manifest.parent / r.t1 for r in rows.itertuples()}


def test_probabilities_sum_to_one_for_every_good_scan(inferred):
    proc, out, manifest = inferred
    table = pd.read_csv(out / "predictions.csv", dtype={"case": str})
    assert list(table.columns) == ["case", "p_CN", "p_MCI", "p_AD", "predicted"], proc.stderr
    good = sorted(set(_scan_paths(manifest)) - {CORRUPT_CASE})
    assert sorted(table["case"]) == good
    probs = table[["p_CN", "p_MCI", "p_AD"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert (table["predicted"] == table[["p_CN", "p_MCI", "p_AD"]].idxmax(axis=1).str[2:]).all()


def test_gradcam_maps_have_their_scans_shape_and_affine(inferred):
    _, out, manifest = inferred
    scans = {c: p for c, p in _scan_paths(manifest).items() if c != CORRUPT_CASE}
    for case, path in scans.items():
        scan, cam = nib.load(path), nib.load(out / f"{case}_gradcam.nii.gz")
        assert cam.shape == scan.shape, case
        assert np.allclose(cam.affine, scan.affine, atol=1e-4), case
        values = cam.get_fdata()
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1 + 1e-5
        assert values.max() > 0, f"{case}: an empty map"
        assert (out / f"{case}_gradcam.png").stat().st_size > 0
    lps = nib.load(scans[LPS_CASE])
    assert nib.aff2axcodes(lps.affine) == ("L", "P", "S")
    assert np.allclose(lps.header.get_zooms()[:3], (1.0, 1.0, 1.2))


def test_corrupt_scan_is_named_the_others_written_and_the_exit_is_nonzero(inferred):
    proc, out, manifest = inferred
    corrupt = _scan_paths(manifest)[CORRUPT_CASE]
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert CORRUPT_CASE in proc.stderr and str(corrupt) in proc.stderr
    assert "truncated" in proc.stderr
    failures = pd.read_csv(out / "failures.csv")
    assert failures["case"].tolist() == [CORRUPT_CASE]
    assert failures["file"].tolist() == [str(corrupt)]
    assert not (out / f"{CORRUPT_CASE}_gradcam.nii.gz").exists()
    assert len(list(out.glob("*_gradcam.nii.gz"))) == 4


def test_map_inversion_is_exact_for_a_linear_field():
    """A linear function of world position, mapped to "MNI" and back, comes back unchanged."""
    scan_affine = np.array(
        [[-1.0, 0, 0, 40.0], [0, -1.0, 0, 30.0], [0, 0, 1.2, -20.0], [0, 0, 0, 1]]
    )  # LPS, 1 x 1 x 1.2 mm
    scan_shape = (30, 28, 24)
    angle = np.deg2rad(4.0)
    mni_to_scan = np.eye(4)  # a rotation about z, a scale and a shift
    mni_to_scan[:2, :2] = 0.95 * np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    mni_to_scan[:3, 3] = [2.0, -3.0, 1.5]
    cam_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    cam_affine[:3, 3] = [-60.0, -60.0, -60.0]  # covers the whole scan
    coefficients = np.array([0.01, -0.02, 0.015])

    def field(world: np.ndarray) -> np.ndarray:  # world (3, ...) in scan space
        return 0.5 + np.tensordot(coefficients, world, axes=1)

    grid = np.stack(np.meshgrid(*(np.arange(60.0) for _ in range(3)), indexing="ij"))
    mni = np.tensordot(cam_affine[:3, :3], grid, axes=1) + cam_affine[:3, 3, None, None, None]
    scan_world = np.tensordot(mni_to_scan[:3, :3], mni, axes=1)
    cam = field(scan_world + mni_to_scan[:3, 3, None, None, None]).astype(np.float32)

    back = cam_to_input_grid(
        cam, cam_affine=cam_affine, mni_to_scan=mni_to_scan, affine=scan_affine, shape=scan_shape
    )
    vox = np.stack(np.meshgrid(*(np.arange(s, dtype=float) for s in scan_shape), indexing="ij"))
    truth = field(
        np.tensordot(scan_affine[:3, :3], vox, axes=1) + scan_affine[:3, 3, None, None, None]
    )
    assert back.shape == scan_shape
    np.testing.assert_allclose(back, truth, atol=1e-4)


@pytest.mark.parametrize(
    ("bundle", "task"),
    [("ad_cls", "classification"), ("brats_seg", "segmentation")],
    ids=["ad_cls", "brats_seg"],
)
def test_infer_dispatches_on_the_bundles_task(bundle: str, task: str):
    assert bundle_task(bundle) == task


@pytest.mark.parametrize(
    "option",
    [{"mc_samples": 5}, {"tta": True}, {"shard": "0/2"}],
    ids=["mc-samples", "tta", "shard"],
)
def test_segmentation_only_options_are_refused(option: dict):
    args = argparse.Namespace(
        bundle="ad_cls", run="r", input="i", out="o", net=None, fold=0, mc_samples=1,
        tta=False, submission=False, shard=None, prob_dtype="float32",
    )  # fmt: skip
    for key, value in option.items():
        setattr(args, key, value)
    with pytest.raises(ValueError, match="only apply to segmentation"):
        main_classify(args)


def test_gzip_helper_truncation_is_what_nibabel_rejects(new_scans: Path):
    """The corrupt fixture really is corrupt (else the failure test would prove nothing)."""
    with pytest.raises(EOFError), gzip.open(_scan_paths(new_scans)[CORRUPT_CASE]) as f:
        f.read()

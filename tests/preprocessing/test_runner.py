"""preprocess_manifest: scores, cache, robustness manifest, kill and resume."""

from __future__ import annotations

import argparse
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import ndimage

from mrivol.data.manifest import build_manifest, read_manifest
from mrivol.preprocessing.qc import world_points
from mrivol.preprocessing.runner import (
    add_preprocess_arguments,
    load_preprocess_config,
    main_preprocess,
    preprocess_manifest,
)
from tests.conftest import MODALITIES, write_tiny_brats_case
from tests.transforms.test_skull_strip import make_phantom


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3 mm phantom case shared with test_skull_strip."""
    return make_phantom(tmp_path_factory)


@pytest.fixture
def fast_config() -> dict:
    """The bundle config with 3 mm resampling and a short pyramid (tiny volumes)."""
    cfg = load_preprocess_config()
    cfg["resample"] = {"axcodes": "RAS", "pixdim": [3.0, 3.0, 3.0]}
    cfg["coregister"] = cfg["coregister"] | {"shrink": [2, 1], "smoothing_mm": [2.0, 0.0]}
    return cfg


@pytest.mark.slow
def test_phantom_case_scores_and_cache(
    phantom_dir: Path, tmp_path: Path, fast_config: dict
) -> None:
    manifest = build_manifest(layout="brats2021", root=phantom_dir.parent, out=tmp_path / "m.csv",
                              folds=1)  # fmt: skip
    assert len(manifest) == 1
    res = preprocess_manifest(tmp_path / "m.csv", tmp_path / "out", config=fast_config,
                              progress=False)  # fmt: skip
    assert not res.failed and len(res.done) == 1
    qc = pd.read_csv(res.qc_csv).set_index("step")
    assert list(qc.index) == ["load", "coregister", "skullstrip", "n4", "resample"]
    assert qc.at["skullstrip", "dice"] >= 0.95
    assert qc.at["coregister", "coreg_error_mm"] <= 1.0
    assert qc.at["n4", "wm_cov_ratio"] <= 1.10
    assert abs(qc.at["resample", "label_volume_ratio"] - 1) <= 0.02
    assert qc.at["resample", "centroid_shift_mm"] <= qc.at["resample", "voxel_mm"]
    df = read_manifest(res.manifest)
    assert Path(df.at[0, "t1"]).is_file() and df.at[0, "fold"] == 0
    case_dir = Path(df.at[0, "t1"]).parent
    assert (case_dir / f"{df.at[0, 'case_id']}_qc.png").is_file()
    marker = case_dir / ".preprocess.json"
    stamp = marker.stat().st_mtime_ns
    again = preprocess_manifest(tmp_path / "m.csv", tmp_path / "out", config=fast_config,
                                progress=False)  # fmt: skip
    assert again.cached == res.done and not again.done
    assert marker.stat().st_mtime_ns == stamp
    fast_config["n4"] = fast_config["n4"] | {"fwhm": 0.2}  # another config: recomputed
    assert preprocess_manifest(tmp_path / "m.csv", tmp_path / "out", config=fast_config,
                               progress=False).done == res.done  # fmt: skip


def _rewrite(path: Path, fn) -> None:
    img = nib.load(path)
    arr, affine = fn(np.asarray(img.dataobj), img.affine)
    nib.save(nib.Nifti1Image(arr, affine), path)


def _robustness_manifest(root: Path) -> Path:
    """Eleven tiny cases: eight broken ones, an LPS-stored one, a 1x1x5 mm one and a good one."""
    names = ["good", "truncated", "nan", "four_d", "mismatch", "missing", "zero", "linear",
             "label3", "lps", "aniso"]  # fmt: skip
    for i, name in enumerate(names):
        write_tiny_brats_case(root / "cases", name, seed=0 if name == "lps" else i)
    d = root / "cases"
    raw = (d / "truncated" / "truncated_t1ce.nii.gz").read_bytes()
    (d / "truncated" / "truncated_t1ce.nii.gz").write_bytes(raw[: len(raw) // 2])
    _rewrite(
        d / "nan" / "nan_t2.nii.gz",
        lambda a, aff: (np.where(np.arange(a.shape[0])[:, None, None] < 5, np.nan, a), aff),
    )
    _rewrite(d / "four_d" / "four_d_flair.nii.gz", lambda a, aff: (np.stack([a, a], -1), aff))
    _rewrite(d / "mismatch" / "mismatch_seg.nii.gz", lambda a, aff: (a[:, :, :30], aff))
    _rewrite(d / "zero" / "zero_t1.nii.gz", lambda a, aff: (np.zeros_like(a), aff))
    _rewrite(  # a label map resampled half a voxel with linear interpolation
        d / "linear" / "linear_seg.nii.gz",
        lambda a, aff: (ndimage.shift(a.astype(np.float32), (0.5, 0, 0), order=1), aff),
    )
    _rewrite(d / "label3" / "label3_seg.nii.gz", lambda a, aff: (np.where(a == 4, 3, a), aff))
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    for f in (d / "lps").glob("*.nii.gz"):  # same world content, stored L->R, P->A flipped

        def to_lps(a, aff):
            flip[:2, 3] = [a.shape[0] - 1, a.shape[1] - 1]
            return a[::-1, ::-1].copy(), aff @ flip

        _rewrite(f, to_lps)
    for f in (d / "aniso").glob("*.nii.gz"):
        _rewrite(f, lambda a, aff: (a, np.diag([1.0, 1.0, 5.0, 1.0])))
    manifest = build_manifest(layout="brats2021", root=d, out=root / "m.csv", folds=1)
    assert len(manifest) == len(names)
    (d / "missing" / "missing_t2.nii.gz").unlink()
    return root / "m.csv"


def test_robustness_manifest(tmp_path: Path, fast_config: dict) -> None:
    manifest = _robustness_manifest(tmp_path)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(fast_config))
    args = add_preprocess_arguments(argparse.ArgumentParser()).parse_args(
        ["--manifest", str(manifest), "--out", str(tmp_path / "out"), "--config", str(cfg_path),
         "--no-progress"])  # fmt: skip
    assert main_preprocess(args) == 1
    failures = pd.read_csv(tmp_path / "out" / "failures.csv", keep_default_na=False)
    failures = failures.set_index("case_id")
    expected = {
        "truncated": ("t1ce", "truncated"), "nan": ("t2", "NaN/Inf"), "four_d": ("flair", "4D"),
        "mismatch": ("seg", "grid differs"), "missing": ("t2", "file not found"),
        "zero": ("t1", "constant"), "linear": ("seg", "non-integer label values"),
        "label3": ("seg", "outside [0, 1, 2, 4]"),
    }  # fmt: skip
    assert set(failures.index) == set(expected)
    for case, (col, words) in expected.items():
        assert failures.at[case, "problem"].startswith(f"{col}: ")
        assert words in failures.at[case, "problem"]
        assert failures.at[case, "file"].endswith(f"{case}_{col}.nii.gz")
    out = read_manifest(tmp_path / "out" / "manifest.csv")
    assert sorted(out["case_id"]) == ["aniso", "good", "lps"]
    assert not (tmp_path / "out" / ".tmp").exists()
    assert sorted(p.name for p in (tmp_path / "out" / "cases").iterdir()) == [
        "aniso",
        "good",
        "lps",
    ]
    # the LPS-stored case holds the same world content as a RAS one (seed 0): same tumour place
    seg_in = nib.load(tmp_path / "cases" / "lps" / "lps_seg.nii.gz")
    seg_out = nib.load(out.set_index("case_id").at["lps", "seg"])
    assert nib.aff2axcodes(seg_out.affine) == ("R", "A", "S")
    cen = [world_points(np.asarray(s.dataobj) > 0, s.affine).mean(0) for s in (seg_in, seg_out)]
    assert np.linalg.norm(cen[0] - cen[1]) <= 3.0
    aniso = nib.load(out.set_index("case_id").at["aniso", "t1"])
    assert np.allclose(aniso.header.get_zooms(), (3.0, 3.0, 3.0))


@pytest.mark.slow
def test_kill_and_resume(tmp_path: Path, fast_config: dict) -> None:
    for i in range(4):
        write_tiny_brats_case(tmp_path / "cases", f"case_{i}", seed=i)
    build_manifest(layout="brats2021", root=tmp_path / "cases", out=tmp_path / "m.csv", folds=2)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(fast_config))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mrivol.preprocessing.runner",
           "--manifest", str(tmp_path / "m.csv"),
           "--out", str(out), "--config", str(cfg), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "cases").glob("*/.preprocess.json")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name for p in (out / "cases").glob("*/.preprocess.json")}
    assert 1 <= len(finished) < 4
    assert {p.name for p in (out / "cases").iterdir()} == finished  # no partial case
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{4 - len(finished)} done, {len(finished)} cached" in rerun.stdout
    assert not (out / ".tmp").exists()
    df = read_manifest(out / "manifest.csv")
    for col in MODALITIES:
        for path in df[col]:
            with gzip.open(path) as f:
                f.read()  # whole stream: CRC checked

"""Shared fixtures: an isolated MLflow store / cache per test, and tiny BraTS-layout cases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pytest

from mrivol.data import BRATS_MODALITIES as MODALITIES

# permuted-free but anisotropic, offset grid: 3 mm voxels, origin away from zero
TINY_AFFINE = np.array(
    [[3.0, 0.0, 0.0, -60.0], [0.0, 3.0, 0.0, -70.0], [0.0, 0.0, 3.0, -40.0], [0.0, 0.0, 0.0, 1.0]]
)
TINY_SHAPE = (40, 40, 32)


@pytest.fixture(autouse=True)
def isolated_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own MLflow store, runs folder and cache: the checkout stays clean."""
    root = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("MRIVOL_RUNS", str(root / "runs"))
    monkeypatch.setenv("MRIVOL_CACHE", str(root / "cache"))
    return root


def write_tiny_brats_case(root: Path, case: str, *, seed: int) -> Path:
    """One BraTS 2021-layout case: a spherical head with a layered spherical tumour.

    Each modality shows the tumour with its own contrast, so a network can learn it in an epoch
    or two. Returns the case directory.
    """
    rng = np.random.default_rng(seed)
    grid = np.mgrid[: TINY_SHAPE[0], : TINY_SHAPE[1], : TINY_SHAPE[2]].astype(np.float32)
    centre = np.array(TINY_SHAPE, dtype=np.float32) / 2
    head = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) < 14.0**2
    tumour = centre + rng.uniform(-4, 4, 3).astype(np.float32)
    r2 = sum((g - c) ** 2 for g, c in zip(grid, tumour, strict=True))
    seg = np.zeros(TINY_SHAPE, np.uint8)
    seg[r2 < 7.0**2] = 2  # oedema
    seg[r2 < 4.5**2] = 4  # enhancing rim
    seg[r2 < 2.5**2] = 1  # necrotic core
    out = root / case
    out.mkdir(parents=True, exist_ok=True)
    contrast = {
        "t1": (0, -20, -30),
        "t1ce": (0, 60, -20),
        "t2": (40, 20, 50),
        "flair": (60, 30, 10),
    }
    for mod in MODALITIES:
        ed, et, ncr = contrast[mod]
        img = 100.0 * head + ed * (seg == 2) + et * (seg == 4) + ncr * (seg == 1)
        img = img + rng.normal(0.0, 3.0, TINY_SHAPE) * head
        nib.save(nib.Nifti1Image(img.astype(np.float32), TINY_AFFINE), out / f"{case}_{mod}.nii.gz")
    nib.save(nib.Nifti1Image(seg, TINY_AFFINE), out / f"{case}_seg.nii.gz")
    return out


@pytest.fixture(scope="session")
def tiny_brats_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six tiny cases in BraTS layout and their 3-fold manifest (2 validation cases in fold 0)."""
    from mrivol.data import build_manifest

    root = tmp_path_factory.mktemp("tiny_brats")
    for i in range(6):
        write_tiny_brats_case(root / "cases", f"tiny_{i:03d}", seed=i)
    manifest = root / "manifest.csv"
    build_manifest(layout="brats2021", root=root / "cases", out=manifest, folds=3, seed=0)
    return manifest


@pytest.fixture(scope="session")
def tiny_ad_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six one-session AD-like subjects (two per class), three stratified folds."""
    from mrivol.synth.ad_phantoms import generate_ad_phantoms

    return generate_ad_phantoms(
        tmp_path_factory.mktemp("ad"), subjects=6, sessions=1, folds=3, seed=1
    )


# overrides that make the ad_cls bundle run in seconds on the tiny AD phantoms
AD_CLS_TINY_OVERRIDES = {
    "input_size": [32, 40, 32],
    "batch_size": 2,
    "gradcam_cases": 2,
    "cache_rate": 1.0,
    "network_def#pos_grid_size": [2, 3, 2],
}


def train_in_store(tmp_path_factory: pytest.TempPathFactory, **train_kwargs):
    """``mrivol.training.train(**train_kwargs)`` into a fresh MLflow store and runs folder.

    For module-scoped fixtures (the function-scoped ``isolated_store`` cannot serve them).
    Returns ``(TrainResult, tracking uri)``.
    """
    from mrivol.training import train

    store = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MRIVOL_RUNS", str(store / "runs"))
        return train(**train_kwargs), uri


@pytest.fixture(scope="session")
def tiny_ad_run(tiny_ad_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """``(TrainResult, tracking uri)`` of one epoch of ad_cls on the tiny phantoms, shared by
    the inference and evaluation tests (which only read the run or add their own results)."""
    return train_in_store(
        tmp_path_factory,
        bundle="ad_cls",
        net="densenet_attention",
        data=tiny_ad_manifest,
        epochs=1,
        profile="cpu",
        overrides={**AD_CLS_TINY_OVERRIDES, "gradcam_cases": 1, "system_metrics": False},
    )


# overrides that make the brats_seg bundle run in seconds on the tiny cases
MULTITASK_TINY_OVERRIDES = {
    "spacing": [3.0, 3.0, 3.0],
    "input_size": [32, 32, 32],
    "network_def#channels": [8, 16, 32, 64],
}
TINY_OVERRIDES = {
    "spacing": [3.0, 3.0, 3.0],
    "roi_size": [32, 32, 32],
    "sw_batch_size": 2,
    "cache_rate": 1.0,
}


# --- subprocess runs of `mrivol`, each with its own store --------------------------------


def train_tiny_brats(
    tmp_path_factory: pytest.TempPathFactory, manifest: Path, *, epochs: int = 1, **overrides
):
    """brats_seg on the tiny cases (TINY_OVERRIDES, no system metrics, ``overrides`` on top) in
    a fresh store, for module-scoped ``trained`` fixtures; ``(TrainResult, tracking uri)``."""
    return train_in_store(
        tmp_path_factory,
        bundle="brats_seg",
        data=manifest,
        epochs=epochs,
        profile="cpu",
        overrides={**TINY_OVERRIDES, "system_metrics": False, **overrides},
    )


def tiny_set_args() -> list[str]:
    """TINY_OVERRIDES as ``mrivol train --set key=value`` arguments."""
    args = []
    for key, value in TINY_OVERRIDES.items():
        args += ["--set", f"{key}={value}"]
    return args


def mrivol_process(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    """``mrivol <args>`` in a subprocess, stdout and stderr together."""
    return subprocess.Popen(
        [sys.executable, "-m", "mrivol.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def run_mrivol(args: list[str], env: dict[str, str], timeout: float = 600) -> str:
    """Run ``mrivol <args>`` to completion; fail the test with its output tail unless it exits 0."""
    proc = mrivol_process(args, env)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture
def store_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a subprocess run with its own MLflow store and runs folder."""
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["MRIVOL_RUNS"] = str(tmp_path / "runs")
    env["OMP_NUM_THREADS"] = "1"  # two processes on two cores, as torchrun sets it
    return env


def experiment_runs(env: dict[str, str], experiment: str = "brats_seg") -> list:
    """The runs of ``experiment`` in the store of ``env``."""
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []

"""``pip install .`` (not editable) ships the bundles: the installed ``mrivol`` trains from any
directory, with no checkout in sight, and logs to MLflow.

The wheel is built from this checkout and installed without dependencies into a fresh virtual
environment whose only other path is this environment's site-packages (a ``.pth`` line), so
the test takes seconds instead of a full download; ``.ci/run`` does the real thing once
(``.ci/check-install``: a fresh venv resolving every dependency).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import mlflow
import pytest
import tomllib

from tests.conftest import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mrivol").rglob("__init__.py")
    }
    assert sorted(listed) == sorted(found | {"mrivol.bundles"})


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel of this checkout; returns its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("install")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist"), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    (wheel,) = (tmp / "dist").glob("mrivol-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def _outside_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MRIVOL_", "MLFLOW_"))}
    env["MRIVOL_CACHE"] = str(workdir / "cache")
    return env


def test_installed_package_finds_its_bundles_outside_the_checkout(installed, tmp_path):
    code = "import mrivol.paths as p; print(p.bundles_root()); print(p.checkout_root())"
    out = subprocess.run(
        [str(installed / "python"), "-c", code],
        cwd=tmp_path, env=_outside_env(tmp_path), capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert out[0].endswith("site-packages/mrivol/bundles") and out[1] == "None"


def _train(installed: Path, workdir: Path, args: list[str]) -> mlflow.entities.Run:
    out = subprocess.run(
        [str(installed / "mrivol"), "train", "--bundle", "brats_seg", "--epochs", "1", *args],
        cwd=workdir, env=_outside_env(workdir), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    store = workdir / "mlruns" / "mlflow.db"  # the default store, in the working directory
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("brats_seg").experiment_id])
    assert run.info.status == "FINISHED"
    assert "val_mean_dice" in run.data.metrics and run.data.params["bundle"] == "brats_seg"
    assert (workdir / "runs" / run.info.run_name / "checkpoints" / "model.pt").is_file()
    return run


def test_installed_mrivol_trains_from_any_directory(installed, tmp_path, tiny_brats_manifest):
    sets = [a for k, v in TINY_OVERRIDES.items() for a in ("--set", f"{k}={v}")]
    run = _train(installed, tmp_path, ["--data", str(tiny_brats_manifest), *sets])
    assert run.data.params["manifest_hash"]


@pytest.mark.slow
def test_installed_mrivol_trains_on_its_default_phantoms(installed, tmp_path):
    """The literal command of the layout issue: default data (synthesised), one epoch."""
    _train(installed, tmp_path, [])
    assert (tmp_path / "cache" / "phantoms" / "brats_seg-cpu" / "manifest.csv").is_file()

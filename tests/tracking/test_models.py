"""A training run's MLflow model: signature, input example, shipped config; registered under an
alias; `mrivol infer --model models:/brats_seg@champion` equals `--run RUN`; `mrivol export`."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pytest
from mlflow.models import Model

from mrivol.cli import main
from mrivol.inference.infer import input_datalist
from mrivol.tracking.models import load_packaged_model, run_model_uri
from tests.conftest import train_tiny_brats, write_tiny_brats_case


@pytest.fixture(scope="module")
def trained(tiny_brats_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """One epoch of brats_seg on the tiny cases (32^3 patches); (result, tracking uri)."""
    return train_tiny_brats(tmp_path_factory, tiny_brats_manifest)


def _mrivol(monkeypatch: pytest.MonkeyPatch, uri: str, *args: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(list(args)) == 0


def test_run_logs_its_model_with_signature_example_and_config(trained, tmp_path):
    result, uri = trained
    model = load_packaged_model(run_model_uri(result.run_id), tracking_uri=uri, dst=tmp_path)
    assert model.run_id == result.run_id
    assert model.input_shape == (-1, 4, -1, -1, -1)  # batch and spatial sizes free
    assert model.settings["net"] == "unet" and model.settings["profile"] == "cpu"
    assert model.settings["overrides"]["roi_size"] == [32, 32, 32]
    names = [f.name for f in model.config_files()]
    assert names[:4] == ["base.yaml", "supervised.yaml", "common.yaml", "inference.yaml"]
    assert all(f.is_file() for f in model.config_files())
    mlmodel = Model.load(str(next(tmp_path.rglob("MLmodel"))))
    assert mlmodel.saved_input_example_info["type"] == "ndarray"
    example = np.asarray(mlmodel.load_input_example(str(next(tmp_path.rglob("MLmodel")).parent)))
    assert example.shape == (1, 4, 32, 32, 32)  # one patch of the training size
    # the best weights, not the last ones
    import torch

    best = torch.load(result.output_dir / "checkpoints" / "model.pt", weights_only=True)
    for key, value in model.network.state_dict().items():
        torch.testing.assert_close(value, best[key], msg=key)


@pytest.fixture(scope="module")
def unseen_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unseen")
    write_tiny_brats_case(root, "unseen_000", seed=21)
    return root


def test_infer_by_registered_alias_equals_infer_by_run(trained, unseen_case, tmp_path, monkeypatch):
    result, uri = trained
    _mrivol(monkeypatch, uri, "register", "--run", result.run_id, "--name", "brats_seg",
            "--alias", "champion")  # fmt: skip
    version = mlflow.MlflowClient(uri).get_model_version_by_alias("brats_seg", "champion")
    assert version.run_id == result.run_id
    for how, ref in (("run", ["--run", result.run_id]),
                     ("model", ["--model", "models:/brats_seg@champion"])):  # fmt: skip
        _mrivol(monkeypatch, uri, "infer", *ref, "--input", str(unseen_case),
                "--out", str(tmp_path / how))  # fmt: skip
    for name in ("unseen_000_seg.nii.gz", "unseen_000_prob_wt.nii.gz"):
        by_run, by_model = (nib.load(tmp_path / how / name) for how in ("run", "model"))
        np.testing.assert_allclose(by_model.affine, by_run.affine)
        np.testing.assert_array_equal(np.asarray(by_model.dataobj), np.asarray(by_run.dataobj))
    prob = np.asarray(nib.load(tmp_path / "run" / "unseen_000_prob_wt.nii.gz").dataobj)
    assert np.unique(prob).size > 100 and prob.max() < 1  # network output, not a constant map


def test_register_refuses_a_run_without_a_model(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.create_experiment("brats_seg"))
    assert main(["register", "--run", run.info.run_id, "--name", "x", "--tracking-uri", uri]) == 2


@pytest.mark.parametrize(
    "fmt", ["torchscript", pytest.param("onnx", marks=pytest.mark.slow)], ids=lambda f: f
)
def test_export_of_the_run_passes_its_parity_check(trained, tmp_path, capsys, fmt):
    result, uri = trained
    out = tmp_path / f"unet.{fmt}"
    argv = ["export", "--run", result.run_id, "--format", fmt, "--out", str(out)]
    assert main([*argv, "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    diffs = [float(line.split("max abs difference ")[1].split()[0])
             for line in printed.splitlines() if "parity on" in line]  # fmt: skip
    assert len(diffs) == 2 and max(diffs) <= 1e-4, printed
    assert "parity on 1x4x64x64x64" in printed and out.is_file()


def test_exported_monai_bundle_runs_with_monai_alone_and_segments_as_the_run(
    trained, unseen_case, tmp_path, monkeypatch
):
    """`mrivol export --format bundle`: MONAI's `ckpt_export` TorchScript file with the shipped
    configs inside, and a folder that `python -m monai.bundle run` segments with as the run does."""
    import subprocess
    import sys

    import torch

    result, uri = trained
    out = tmp_path / "bundle"
    _mrivol(monkeypatch, uri, "export", "--run", result.run_id, "--format", "bundle",
            "--out", str(out))  # fmt: skip
    assert (out / "models" / "model.pt").is_file() and (out / "docs" / "README.md").is_file()
    extra = {"metadata.json": "", "inference.json": "", "mrivol_settings.json": ""}
    torch.jit.load(str(out / "models" / "model.ts"), _extra_files=extra)  # ckpt_export's layout
    assert b'"roi_size": [32, 32, 32]' in extra["mrivol_settings.json"].replace(b"\n", b"")
    assert json.loads(extra["inference.json"])["infer"]["evaluator"]  # the configs travel along
    # a non-empty folder is refused (exit 2), nothing overwritten
    assert main(["export", "--run", result.run_id, "--format", "bundle", "--out", str(out),
                 "--tracking-uri", uri]) == 2  # fmt: skip

    _mrivol(monkeypatch, uri, "infer", "--run", result.run_id, "--input", str(unseen_case),
            "--out", str(tmp_path / "run"))  # fmt: skip
    datalist = input_datalist(unseen_case)  # as `mrivol infer --input DIR` reads it
    configs = [str(out / "configs" / f) for f in ("base.yaml", "supervised.yaml", "common.yaml",
               "inference.yaml", "cpu.yaml", "unet.yaml", "mrivol_settings.json")]  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", repr(configs),
         "--meta_file", str(out / "configs" / "metadata.json"), "--bundle_root", str(out),
         "--infer#datalist", repr(datalist), "--output_dir", str(tmp_path / "monai")],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    by_monai = nib.load(tmp_path / "monai" / "predictions" / "unseen_000_seg.nii.gz")
    by_run = nib.load(tmp_path / "run" / "unseen_000_seg.nii.gz")
    np.testing.assert_allclose(by_monai.affine, by_run.affine)
    np.testing.assert_array_equal(np.asarray(by_monai.dataobj), np.asarray(by_run.dataobj))

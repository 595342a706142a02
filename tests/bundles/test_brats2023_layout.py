"""A phantom set in the BraTS 2023+ layout builds, checks and trains brats_seg (one short epoch).

Six MNI phantoms at 4 mm, rewritten as ``BraTS-PHA-<n>-000/BraTS-PHA-<n>-000-{t1n,t1c,t2w,t2f,
seg}.nii.gz`` with ET = 3, through the commands a user types: ``mrivol manifest build --layout
brats2023``, ``mrivol manifest check``, ``mrivol train --data``. The bundle's et_label (4 in its
config) follows the manifest's layout.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrivol.synth import generate_brats_phantoms, write_brats2023_layout
from tests.conftest import experiment_runs, run_mrivol, tiny_set_args


@pytest.fixture(scope="module")
def brats2023_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("brats2023")
    generate_brats_phantoms(
        root / "src", n_cases=6, shape=(48, 56, 48), spacing=(4.0, 4.0, 4.0), progress=False
    )
    names = write_brats2023_layout(root / "src", root / "BraTS2023-PHA")
    assert list(names.values()) == [f"BraTS-PHA-{i:05d}-000" for i in range(6)]
    return root / "BraTS2023-PHA"


def test_written_in_2023_names_and_labels(brats2023_root: Path):
    case = brats2023_root / "BraTS-PHA-00000-000"
    assert sorted(p.name for p in case.iterdir()) == [
        f"BraTS-PHA-00000-000-{m}.nii.gz" for m in ("seg", "t1c", "t1n", "t2f", "t2w")
    ]
    labels = set(np.unique(np.asarray(nib.load(case / "BraTS-PHA-00000-000-seg.nii.gz").dataobj)))
    assert labels <= {0, 1, 2, 3} and 3 in labels


def test_builds_checks_and_trains(brats2023_root: Path, tmp_path: Path, store_env):
    manifest = tmp_path / "brats2023.csv"
    out = run_mrivol(
        ["manifest", "build", "--layout", "brats2023", "--root", str(brats2023_root),
         "--out", str(manifest), "--folds", "3"],
        store_env,
    )  # fmt: skip
    assert "6 scans of 6 subjects" in out
    assert list(pd.read_csv(manifest).columns[5:]) == ["t1n", "t1c", "t2w", "t2f", "seg"]
    assert "every row is valid" in run_mrivol(["manifest", "check", str(manifest)], store_env)

    run_mrivol(
        ["train", "--bundle", "brats_seg", "--data", str(manifest), "--epochs", "1",
         "--profile", "cpu", *tiny_set_args()],
        store_env,
    )  # fmt: skip
    (run,) = experiment_runs(store_env)
    assert run.info.status == "FINISHED"
    assert run.data.params["et_label"] == "3"  # from the manifest's layout, not the config's 4
    assert run.data.params["n_train"] == "4" and run.data.params["n_val"] == "2"
    client = mlflow.MlflowClient(store_env["MLFLOW_TRACKING_URI"])
    for name in ("val_mean_dice", "val_lesionwise_dice", "val_hd95"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [1], name


def test_missing_modality_leaves_the_case_out_and_names_it(brats2023_root, tmp_path, store_env):
    root = tmp_path / "copy"
    for case in sorted(brats2023_root.iterdir())[:3]:
        (root / case.name).mkdir(parents=True)
        for f in case.iterdir():
            (root / case.name / f.name).symlink_to(f)
    (root / "BraTS-PHA-00001-000" / "BraTS-PHA-00001-000-t2f.nii.gz").unlink()
    manifest = tmp_path / "m.csv"
    args = ["manifest", "build", "--layout", "brats2023", "--root", str(root), "--folds", "2"]
    out = run_mrivol([*args, "--out", str(manifest), "--skip-incomplete"], store_env)
    assert "BraTS-PHA-00001-000: missing BraTS-PHA-00001-000-t2f.nii.gz" in out
    assert list(pd.read_csv(manifest)["case_id"]) == ["BraTS-PHA-00000-000", "BraTS-PHA-00002-000"]

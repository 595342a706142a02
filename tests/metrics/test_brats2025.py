"""The 2025 path gives exactly what the package's own ``brats-evaluate`` command gives.

Generated cases (BraTS 2023+ labels, several lesions, a miss, a false positive, anisotropic
voxels) in flat folders, scored once by ``brats-evaluate --config gli`` (its JSON) and once by
:func:`mrivol.metrics.brats2025.evaluate_2025`, field by field.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrivol.evaluation.seg_evaluation import evaluate_segmentations
from mrivol.metrics.brats2025 import BRATS2025_CONFIGS, BRATS2025_FIELDS, evaluate_2025

CLI = Path(sys.executable).parent / "brats-evaluate"
AFFINE = np.diag([1.0, 1.0, 1.5, 1.0])
SHAPE = (40, 40, 24)


def _case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Truth: a tumour (oedema, necrosis, ET) and a satellite; prediction: the tumour shifted
    by up to a voxel, the satellite missed or found, and a false-positive component."""
    truth = np.zeros(SHAPE, np.uint8)
    x = int(rng.integers(4, 8))
    truth[x : x + 10, 4:14, 4:12] = 2
    truth[x + 2 : x + 8, 6:12, 5:10] = 1
    truth[x + 3 : x + 6, 7:10, 6:9] = 3
    truth[26:30, 4:8, 4:8] = 2
    pred = np.roll(truth, int(rng.integers(-1, 2)), axis=0)
    if rng.random() < 0.5:
        pred[26:30, 4:8, 4:8] = 0
    pred[28:32, 28:32, 16:20] = int(rng.choice([2, 3]))
    return pred, truth


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("brats2025")
    rng = np.random.default_rng(0)
    cases = [f"BraTS-GLI-{i:05d}-000" for i in range(3)]
    for case in cases:
        pred, truth = _case(rng)
        for sub, data in (("pred", pred), ("ref", truth)):
            (root / sub).mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(data, AFFINE), root / sub / f"{case}.nii.gz")
    return root / "pred", root / "ref", cases


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_equals_the_official_command_field_by_field(folders, tmp_path):
    pred, ref, cases = folders
    summary = tmp_path / "summary.json"
    subprocess.run(
        [str(CLI), "--ref_path", str(ref), "--pred_path", str(pred), "--config", "gli",
         "--summary_json", str(summary)],
        check=True, capture_output=True,
    )  # fmt: skip
    official = {m["subject_name"]: m for m in json.loads(summary.read_text())["metrics"]}
    assert sorted(official) == [f"{c}.nii.gz" for c in cases]

    rows = evaluate_2025(
        [(c, pred / f"{c}.nii.gz", ref / f"{c}.nii.gz") for c in cases], "BraTS2025-GLI"
    )
    assert len(rows) == 3 * 6  # GLI: wt, tc, et, netc, snfh, rc
    for row in rows:
        theirs = official[f"{row['case']}.nii.gz"][row["region"]]
        for column, field in BRATS2025_FIELDS.items():
            assert _same(float(row[column]), float(theirs[field])), (row["case"], column)
    assert {r["num_fp"] for r in rows if r["region"] == "wt"} == {1}  # the FP in every case
    assert any(r["num_fn"] for r in rows)  # some satellites missed


def test_evaluate_seg_with_a_2025_challenge(folders, tmp_path):
    pred, ref, cases = folders
    result = evaluate_segmentations(
        pred, ref, out=tmp_path / "m.csv", labels="brats2023", challenge="BraTS2025-GLI"
    )
    assert not result.failed
    assert result.naming == {"{case}.nii.gz": 3}
    wt = [r for r in result.rows if r["region"] == "wt"]
    assert len(wt) == 3 and all("dice" in r and "lesionwise_f1" in r for r in wt)
    assert {r["region"] for r in result.rows} == {"wt", "tc", "et", "netc", "snfh", "rc"}


def test_2021_labels_are_refused_before_any_case(folders, tmp_path):
    pred, ref, _ = folders
    with pytest.raises(ValueError, match="reads BraTS 2023\\+ labels"):
        evaluate_segmentations(pred, ref, out=tmp_path / "m.csv", challenge="BraTS2025-GLI")


def test_a_broken_file_is_named(folders, tmp_path):
    _, ref, cases = folders
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match=f"case '{cases[0]}'.*bad.nii.gz"):
        evaluate_2025([(cases[0], bad, ref / f"{cases[0]}.nii.gz")], "BraTS2025-GLI")


def test_every_bundled_configuration_loads():
    from mrivol.metrics.brats2025 import load_2025_evaluator

    for challenge in BRATS2025_CONFIGS:
        assert load_2025_evaluator(challenge) is not None
    with pytest.raises(ValueError, match="Unknown BraTS 2025 challenge"):
        load_2025_evaluator("BraTS2025-XYZ")


def _truncated(path: Path, out: Path) -> Path:
    raw = path.read_bytes()
    out.write_bytes(raw[: len(raw) * 2 // 3])
    return out


def _missing(path: Path, out: Path) -> Path:
    return out


@pytest.mark.parametrize(
    ("spoil", "error", "what"),
    [
        (_missing, FileNotFoundError, "does not exist"),
        # SimpleITK, which the evaluator reads with, would fill the cut-off part with zeros
        (_truncated, ValueError, "is truncated or corrupted"),
    ],
    ids=["missing", "truncated"],
)
@pytest.mark.parametrize("role", ["prediction", "truth"])
def test_a_missing_or_truncated_file_is_named_with_its_case(
    folders, tmp_path, spoil, error, what, role
):
    pred, ref, cases = folders
    case = cases[1]
    files = {"prediction": pred / f"{case}.nii.gz", "truth": ref / f"{case}.nii.gz"}
    files[role] = spoil(files[role], tmp_path / f"spoilt_{case}.nii.gz")
    with pytest.raises(
        error, match=f"case '{case}': the {role} file .*spoilt_{case}.nii.gz {what}"
    ):
        evaluate_2025([(case, files["prediction"], files["truth"])], "BraTS2025-GLI")

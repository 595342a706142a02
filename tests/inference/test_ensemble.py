"""Fold ensembles: samples spread over folds, probabilities averaged, uncertainty pooled."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrivol.inference.ensemble import (
    _combine_case,
    binary_entropy,
    spread_samples,
)
from mrivol.inference.postprocessing import Postprocessing
from mrivol.tracking.models import inference_overrides

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
REGIONS = ("tc", "wt", "et")


@pytest.mark.parametrize(
    ("total", "folds", "expected"),
    [(10, 5, [2] * 5), (7, 3, [3, 2, 2]), (1, 4, [1] * 4), (3, 5, [1] * 5)],
    ids=["even", "uneven", "deterministic", "fewer-than-folds"],
)
def test_samples_are_spread_over_the_folds(total, folds, expected):
    assert spread_samples(total, folds) == expected


def test_training_only_overrides_do_not_reach_inference():
    kept = inference_overrides(
        {"spacing": [3, 3, 3], "max_epochs": 2, "train#bundle_handlers": [], "network_def#x": 1}
    )
    assert kept == {"spacing": [3, 3, 3], "network_def#x": 1}


def _write(folder: Path, case: str, kind: str, region: str, array: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(
        nib.Nifti1Image(array.astype(np.float32), AFFINE), folder / f"{case}_{kind}_{region}.nii.gz"
    )


def _fold_outputs(tmp_path: Path, probs: dict[int, float], mc: dict[int, tuple[float, float]]):
    """Fold dirs with constant maps: probability p_k; (entropy, MI) of MC folds."""
    dirs = {}
    for k, p in probs.items():
        dirs[k] = tmp_path / f"fold{k}"
        for region in REGIONS:
            _write(dirs[k], "c1", "prob", region, np.full((4, 4, 4), p))
            if k in mc:
                _write(dirs[k], "c1", "entropy", region, np.full((4, 4, 4), mc[k][0]))
                _write(dirs[k], "c1", "mi", region, np.full((4, 4, 4), mc[k][1]))
    return dirs


def _read(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, np.float64)


def test_probabilities_are_averaged_and_thresholded(tmp_path):
    dirs = _fold_outputs(tmp_path, {0: 0.4, 1: 0.8}, {})
    seg = _combine_case(
        "c1",
        dirs,
        {0: 1, 1: 1},
        regions=REGIONS,
        out=tmp_path / "out",
        labels="brats2021",
        rules=None,
        raw_dir=None,
    )
    assert np.allclose(_read(tmp_path / "out" / "c1_prob_wt.nii.gz"), 0.6)
    assert np.allclose(_read(tmp_path / "out" / "c1_foldvar_wt.nii.gz"), 0.04)  # (0.2^2 + 0.2^2)/2
    assert (_read(seg) == 4).all()  # every region above 0.5: ET wins
    assert np.allclose(nib.load(seg).affine, AFFINE)
    assert not (tmp_path / "out" / "c1_entropy_wt.nii.gz").exists()  # no MC, no entropy


def test_mc_uncertainty_pools_folds_and_includes_their_disagreement(tmp_path):
    # fold 0: 2 MC samples, mean 0.2, predictive entropy 0.45, MI 0.05; fold 1: 1 sample, 0.7
    dirs = _fold_outputs(tmp_path, {0: 0.2, 1: 0.7}, {0: (0.45, 0.05)})
    _combine_case(
        "c1",
        dirs,
        {0: 2, 1: 1},
        regions=REGIONS,
        out=tmp_path / "out",
        labels="brats2021",
        rules=None,
        raw_dir=None,
        uncertainty=True,
    )
    p_bar = (2 * 0.2 + 0.7) / 3
    expected_entropy = (2 * (0.45 - 0.05) + binary_entropy(np.array(0.7))) / 3
    entropy = _read(tmp_path / "out" / "c1_entropy_tc.nii.gz")
    mi = _read(tmp_path / "out" / "c1_mi_tc.nii.gz")
    assert np.allclose(entropy, binary_entropy(np.array(p_bar)), atol=1e-5)
    assert np.allclose(mi, binary_entropy(np.array(p_bar)) - expected_entropy, atol=1e-5)
    assert (mi > 0.05 / 3).all()  # the between-fold disagreement adds to the epistemic part


def test_postprocessing_applies_after_the_raw_ensemble(tmp_path):
    dirs = _fold_outputs(tmp_path, {0: 0.9}, {})
    rules = Postprocessing(et_min_total_mm3=1e6)  # 64 voxels of 8 mm^3: below, ET -> necrosis
    seg = _combine_case(
        "c1",
        dirs,
        {0: 1},
        regions=REGIONS,
        out=tmp_path / "out",
        labels="brats2021",
        rules=rules,
        raw_dir=tmp_path / "raw",
    )
    assert (_read(tmp_path / "raw" / "c1_seg.nii.gz") == 4).all()
    assert (_read(seg) == 1).all()

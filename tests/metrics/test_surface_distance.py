"""HD95 and Dice against DeepMind's surface-distance (the BraTS 2023 reference)."""

from __future__ import annotations

import numpy as np
import pytest

from mrivol.metrics import (
    compute_robust_hausdorff,
    compute_surface_distances,
    dice_score,
    hd95_mm,
    neighbour_code_to_surface_area,
)
from tests.metrics.conftest import random_blob_mask


def _single_voxel(shape, idx):
    m = np.zeros(shape, bool)
    m[idx] = True
    return m


def _case(kind: str, seed: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return (truth, prediction) for a named scenario."""
    rng = np.random.default_rng(seed)
    if kind == "blobs":
        return random_blob_mask(rng, shape), random_blob_mask(rng, shape)
    if kind == "perturbed":  # a prediction close to the truth: typical segmentation error
        gt = random_blob_mask(rng, shape, fill=0.2)
        return gt, gt ^ (rng.random(shape) < 0.03)
    if kind == "touching_border":  # foreground on the image boundary (crop edge case)
        gt = random_blob_mask(rng, shape, fill=0.3)
        gt[0], gt[:, -1] = True, True
        return gt, random_blob_mask(rng, shape, fill=0.3)
    if kind == "single_voxels":
        return _single_voxel(shape, (3, 4, 5)), _single_voxel(shape, (10, 2, 7))
    if kind == "same_single_voxel":
        return _single_voxel(shape, (5, 5, 5)), _single_voxel(shape, (5, 5, 5))
    if kind == "empty_pred":
        return random_blob_mask(rng, shape), np.zeros(shape, bool)
    if kind == "empty_truth":
        return np.zeros(shape, bool), random_blob_mask(rng, shape)
    if kind == "both_empty":
        return np.zeros(shape, bool), np.zeros(shape, bool)
    raise AssertionError(kind)


def _pairs(distances: np.ndarray, areas: np.ndarray) -> list[tuple[float, float]]:
    return sorted(zip(np.round(distances, 9).tolist(), np.round(areas, 12).tolist(), strict=True))


CASES = [
    pytest.param("blobs", 0, (32, 32, 32), (1.0, 1.0, 1.0), id="blobs-iso"),
    pytest.param("blobs", 1, (24, 32, 20), (0.8, 1.2, 3.0), id="blobs-aniso"),
    pytest.param("blobs", 2, (40, 20, 16), (1.0, 1.0, 2.5), id="blobs-thick-slices"),
    pytest.param("perturbed", 3, (32, 32, 32), (1.0, 1.0, 1.0), id="perturbed-iso"),
    pytest.param("perturbed", 4, (32, 28, 24), (0.5, 0.7, 1.9), id="perturbed-aniso"),
    pytest.param("touching_border", 5, (24, 24, 24), (1.0, 2.0, 1.5), id="touching-border"),
    pytest.param("single_voxels", 6, (16, 16, 16), (1.0, 1.0, 1.0), id="single-voxels"),
    pytest.param("single_voxels", 7, (16, 16, 16), (0.9, 1.1, 2.2), id="single-voxels-aniso"),
    pytest.param("same_single_voxel", 8, (12, 12, 12), (1.0, 1.0, 1.0), id="same-voxel"),
    pytest.param("empty_pred", 9, (20, 20, 20), (1.0, 1.0, 1.0), id="empty-pred"),
    pytest.param("empty_truth", 10, (20, 20, 20), (1.0, 1.0, 2.0), id="empty-truth"),
    pytest.param("both_empty", 11, (20, 20, 20), (1.0, 1.0, 1.0), id="both-empty"),
]


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 1.3, 3.1)], ids=["iso", "aniso"])
def test_area_table_matches_deepmind_bit_for_bit(deepmind_sd, spacing):
    from surface_distance import lookup_tables

    expected = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    np.testing.assert_array_equal(neighbour_code_to_surface_area(spacing), expected)


@pytest.mark.parametrize(("kind", "seed", "shape", "spacing"), CASES)
def test_surface_distances_match_deepmind(deepmind_sd, kind, seed, shape, spacing):
    gt, pred = _case(kind, seed, shape)
    ref = deepmind_sd.compute_surface_distances(gt, pred, spacing)
    ours = compute_surface_distances(gt, pred, spacing)
    for direction, owner in (("gt_to_pred", "gt"), ("pred_to_gt", "pred")):
        d_ours, d_ref = getattr(ours, f"distances_{direction}"), ref[f"distances_{direction}"]
        a_ours, a_ref = getattr(ours, f"surfel_areas_{owner}"), ref[f"surfel_areas_{owner}"]
        np.testing.assert_allclose(d_ours, d_ref, rtol=0, atol=1e-9)
        # Same multiset of (distance, area) pairs; the order inside groups of equal distances
        # may differ by rounding (anisotropic ties), so compare after a canonical sort.
        assert _pairs(d_ours, a_ours) == _pairs(d_ref, a_ref)
    for percent in (95.0, 100.0, 50.0):
        expected = deepmind_sd.compute_robust_hausdorff(ref, percent)
        got = compute_robust_hausdorff(ours, percent)
        if np.isinf(expected):
            assert np.isinf(got)
        else:
            assert got == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(("kind", "seed", "shape", "spacing"), CASES)
def test_brats_hd95_and_dice_match_deepmind_with_empty_rules(
    deepmind_sd, kind, seed, shape, spacing
):
    gt, pred = _case(kind, seed, shape)
    ref_dice = deepmind_sd.compute_dice_coefficient(gt, pred)
    ref_hd = deepmind_sd.compute_robust_hausdorff(
        deepmind_sd.compute_surface_distances(gt, pred, spacing), 95
    )
    dice = dice_score(pred, gt)
    hd = hd95_mm(pred, gt, spacing=spacing, max_hd95=373.1287)
    if not gt.any() and not pred.any():  # BraTS: both empty -> Dice 1, HD95 0 (package: NaN)
        assert np.isnan(ref_dice)
        assert (dice, hd) == (1.0, 0.0)
    elif not gt.any() or not pred.any():  # BraTS: one empty -> Dice 0, HD95 = maximum
        assert ref_dice == 0.0 and np.isinf(ref_hd)
        assert (dice, hd) == (0.0, 373.1287)
    else:
        assert dice == pytest.approx(ref_dice, abs=1e-6)
        assert hd == pytest.approx(ref_hd, abs=0.01)
        assert np.isfinite(hd)


def test_hd95_uses_spacing_in_millimetres():
    gt = np.zeros((20, 20, 20), bool)
    gt[5:10, 5:10, 5:10] = True
    pred = np.roll(gt, 3, axis=2)  # 3 voxels along the third axis
    assert hd95_mm(pred, gt, spacing=(1, 1, 1)) == pytest.approx(3.0)
    assert hd95_mm(pred, gt, spacing=(1, 1, 2.5)) == pytest.approx(7.5)
    assert hd95_mm(pred, gt, spacing=(4, 4, 1)) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("gt_shape", "pred_shape", "spacing"),
    [
        pytest.param((8, 8, 8), (8, 8, 9), (1, 1, 1), id="shape-mismatch"),
        pytest.param((8, 8), (8, 8), (1, 1), id="2d"),
        pytest.param((8, 8, 8), (8, 8, 8), (1, 0, 1), id="zero-spacing"),
        pytest.param((8, 8, 8), (8, 8, 8), (1, 1), id="short-spacing"),
    ],
)
def test_invalid_inputs_raise(gt_shape, pred_shape, spacing):
    with pytest.raises(ValueError):
        compute_surface_distances(np.ones(gt_shape, bool), np.ones(pred_shape, bool), spacing)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20), ids=[f"seed{i}" for i in range(20)])
def test_many_random_cases_match_deepmind(deepmind_sd, seed):
    rng = np.random.default_rng(1000 + seed)
    shape = tuple(int(n) for n in rng.integers(24, 64, 3))
    spacing = tuple(float(s) for s in rng.uniform(0.5, 3.0, 3).round(2))
    gt = random_blob_mask(rng, shape, fill=float(rng.uniform(0.01, 0.3)))
    pred = gt ^ (rng.random(shape) < rng.uniform(0.0, 0.05))
    pred = np.roll(pred, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 3)))
    ref = deepmind_sd.compute_surface_distances(gt, pred, spacing)
    expected = deepmind_sd.compute_robust_hausdorff(ref, 95)
    assert hd95_mm(pred, gt, spacing=spacing) == pytest.approx(expected, abs=0.01)
    assert dice_score(pred, gt) == pytest.approx(deepmind_sd.compute_dice_coefficient(gt, pred))


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (0.9, 0.9, 2.5)], ids=["iso", "aniso"])
def test_distance_transform_path_equals_kdtree_path(spacing, monkeypatch):
    """Ragged masks take DeepMind's EDT route; small ones the k-d tree: same numbers."""
    from mrivol.metrics import surface_distance as sd

    rng = np.random.default_rng(3)
    gt = np.zeros((40, 44, 36), bool)
    gt[10:30, 12:32, 8:28] = True
    pred = rng.random(gt.shape) > 0.6  # an untrained network's speckle
    monkeypatch.setattr(sd, "_KDTREE_MAX_POINTS", 0)
    by_edt = sd.compute_surface_distances(gt, pred, spacing)
    monkeypatch.setattr(sd, "_KDTREE_MAX_POINTS", 10**9)
    by_tree = sd.compute_surface_distances(gt, pred, spacing)
    for a, b in zip(by_edt, by_tree, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)

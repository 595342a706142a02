"""BraTS lesion-wise Dice / HD95 (2023 and 2024 rules) on hand-built volumes.

Unless a test says otherwise: 40^3 voxels of 1 mm, BraTS 2023 GLI rules (dilation 3, lesions of
at most 50 mm^3 left out, HD95 penalty 374 mm). Cubes are written ``cube(x, y, z, n)``: n^3
voxels from index (x, y, z). Dilation 3 grows a mask by 3 voxels along each axis.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import ndimage

import mrivol.metrics.lesionwise as lesionwise_module
from mrivol.metrics import (
    LESIONWISE_PRESETS,
    lesionwise_preset,
    lesionwise_region,
    lesionwise_report,
)
from mrivol.metrics.segmentation import dice_score, hd95_mm

SHAPE = (40, 40, 40)
GLI23 = {"dilation": 3, "volume_threshold_mm3": 50, "hd95_penalty": 374}


def cube(x: int, y: int, z: int, n: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[x : x + n, y : y + n, z : z + n] = True
    return m


def box(lo: tuple[int, int, int], hi: tuple[int, int, int]) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return m


A = cube(5, 5, 5, 5)  # 125 mm^3: counted
B = cube(25, 25, 25, 4)  # 64 mm^3: counted
SMALL = cube(25, 5, 25, 3)  # 27 mm^3 <= 50: left out
EMPTY = np.zeros(SHAPE, bool)


def _scores(result) -> tuple[float, float, int, int, int]:
    r = result
    return r.lesionwise_dice, r.lesionwise_hd95, r.num_tp, r.num_fp, r.num_fn


@pytest.mark.parametrize(
    ("pred", "true", "expected"),
    [
        # one lesion found exactly: Dice 1, HD95 0
        pytest.param(A, A, (1.0, 0.0, 1, 0, 0), id="perfect"),
        # A found (1, 0 mm), B missed (0, 374 mm): Dice (1 + 0) / 2, HD95 (0 + 374) / 2
        pytest.param(A, A | B, (0.5, 187.0, 1, 0, 1), id="missed-lesion"),
        # an unmatched 1-voxel component costs as much as a lesion: (1 + 0) / 2, (0 + 374) / 2
        pytest.param(A | cube(30, 30, 30, 1), A, (0.5, 187.0, 1, 1, 0), id="fp-one-voxel"),
        # ... and so does a 512-voxel one: FP size is not penalised
        pytest.param(A | cube(28, 28, 28, 8), A, (0.5, 187.0, 1, 1, 0), id="fp-large"),
        # two FPs: 1 / (1 + 2), (0 + 2 * 374) / 3
        pytest.param(
            A | cube(30, 30, 30, 2) | cube(30, 5, 30, 2),
            A,
            (1 / 3, 748 / 3, 1, 2, 0),
            id="two-fps",
        ),
        # a 27 mm^3 lesion is left out whether missed ...
        pytest.param(A, A | SMALL, (1.0, 0.0, 1, 0, 0), id="small-missed"),
        # ... or found (not a TP, and its prediction is no FP either)
        pytest.param(A | SMALL, A | SMALL, (1.0, 0.0, 1, 0, 0), id="small-found"),
        # only a small lesion, nothing predicted: nothing to score -> Dice 1, HD95 0
        pytest.param(EMPTY, SMALL, (1.0, 0.0, 0, 0, 0), id="only-small-none-predicted"),
        # empty truth with a prediction: one FP -> 0 / 1, 374 / 1
        pytest.param(A, EMPTY, (0.0, 374.0, 0, 1, 0), id="empty-truth"),
        # empty prediction: the lesion is missed -> 0, 374
        pytest.param(EMPTY, A, (0.0, 374.0, 0, 0, 1), id="empty-prediction"),
        pytest.param(EMPTY, EMPTY, (1.0, 0.0, 0, 0, 0), id="both-empty"),
    ],
)
def test_counts_and_scores(pred, true, expected):
    assert _scores(lesionwise_region(pred, true, spacing=(1, 1, 1), **GLI23)) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        # A: x 5..9. B = A moved by 5 + gap. Dilated, A reaches x 12 and B x 13 (gap 6):
        # 26-adjacent, one lesion of 250 mm^3 predicted by A alone -> Dice 2*125/375 = 2/3.
        # HD95: B's far face (corner x 21) is 11 mm from A's near face (x 10); its 16
        # interior surfels (1 mm^2 each) alone are over 5% of the ~270 mm^2 truth surface.
        pytest.param(6, (2 / 3, 11.0, 1, 0, 0), id="gap6-merged"),
        # gap 7: B dilated starts at x 14, a voxel apart from A's x 12: two lesions,
        # B missed -> (1 + 0) / 2, (0 + 374) / 2
        pytest.param(7, (0.5, 187.0, 1, 0, 1), id="gap7-separate"),
    ],
)
def test_truth_components_merged_by_dilation(gap, expected):
    true = A | cube(10 + gap, 5, 5, 5)
    result = lesionwise_region(A, true, spacing=(1, 1, 1), **GLI23)
    assert _scores(result) == pytest.approx(expected)
    assert len(result.lesions) == (1 if gap == 6 else 2)


def test_lesion_hit_by_two_predicted_components():
    # truth: a 10 x 5 x 5 bar (x 5..14); prediction: the bar less its slice x = 9, i.e. two
    # components of 100 and 125 voxels, both matched: Dice 2 * 225 / (250 + 225) = 18/19.
    # HD95: every truth surfel lies on a predicted face (0); predicted surfels on the two cut
    # faces are 1 or 2 mm inside the truth, and the 2 mm ones (4 per face, 1 mm^2 each) are
    # under 5% of the ~240 mm^2 predicted surface -> 1 mm.
    true = box((5, 5, 5), (15, 10, 10))
    pred = true.copy()
    pred[9] = False
    result = lesionwise_region(pred, true, spacing=(1, 1, 1), **GLI23)
    assert _scores(result) == pytest.approx((18 / 19, 1.0, 1, 0, 0))
    assert result.lesions[0].matched == (1, 2)
    # the same as the whole-volume Dice / HD95 of the lesion and the union of both
    assert result.lesions[0].dice == dice_score(pred, true)
    assert result.lesions[0].hd95 == hd95_mm(pred, true, spacing=(1, 1, 1))


def test_prediction_touching_two_lesions_counts_for_both():
    # B2 = A moved by 13 in x (gap 8 > 6: two lesions); a bar over x 8..19 touches both
    # dilated lesions: two TPs, no FP, and each lesion is scored against the whole bar
    b2 = cube(18, 5, 5, 5)
    bar = box((8, 5, 5), (20, 10, 10))
    result = lesionwise_region(bar, A | b2, spacing=(1, 1, 1), **GLI23)
    assert (result.num_tp, result.num_fp, result.num_fn) == (2, 0, 0)
    assert [s.matched for s in result.lesions] == [(1,), (1,)]
    # lesion A (125 voxels) overlaps the bar (300 voxels) on x 8..9: 2 * 50 / 425
    assert result.lesions[0].dice == pytest.approx(100 / 425)


@pytest.mark.parametrize(
    ("spacing", "volume", "expected"),
    [
        # 27 voxels x 1 mm^3 = 27 <= 50: left out, nothing to score
        pytest.param((1.0, 1.0, 1.0), 27.0, (1.0, 0.0, 0, 0, 0), id="1mm-dropped"),
        # 27 x 2 mm^3 = 54 > 50: a missed lesion
        pytest.param((2.0, 1.0, 1.0), 54.0, (0.0, 374.0, 0, 0, 1), id="2mm-counted"),
        # 27 x 1.85 = 49.95 <= 50: left out again
        pytest.param((1.0, 1.0, 1.85), 49.95, (1.0, 0.0, 0, 0, 0), id="1.85mm-dropped"),
    ],
)
def test_volume_threshold_uses_mm3(spacing, volume, expected):
    result = lesionwise_region(EMPTY, SMALL, spacing=spacing, **GLI23)
    assert result.lesions[0].volume_mm3 == pytest.approx(volume)
    assert _scores(result) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("name", "year", "dilation", "threshold", "penalty"),
    [
        ("BraTS-GLI", 2023, 3, 50, 374.0),
        ("BraTS-SSA", 2023, 3, 50, 374.0),
        ("BraTS-MEN", 2023, 1, 50, 374.0),
        ("BraTS-PED", 2023, 3, 50, 374.0),
        ("BraTS-MET", 2023, 1, 2, 374.0),
        ("BraTS-GLI-2024", 2024, 3, 20, 337.0),
        ("BraTS-PED-2024", 2024, 5, 10, 374.0),
        ("BraTS-MET-2024", 2024, 1, 2, 374.0),
        ("BraTS-SSA-2024", 2024, 3, 50, 374.0),
        ("BraTS-MEN-2024", 2024, 1, 50, 374.0),
        ("BraTS-MEN-RT-2024", 2024, 1, 50, "diagonal"),
    ],
    ids=lambda v: str(v),
)
def test_presets(name, year, dilation, threshold, penalty):
    rules = lesionwise_preset(name)
    first = rules.regions[0]  # WT (GTV for MEN-RT)
    assert (rules.year, first.dilation, first.volume_threshold_mm3) == (year, dilation, threshold)
    assert rules.hd95_penalty == penalty
    assert rules.name == name and name in LESIONWISE_PRESETS


def test_unknown_preset_lists_names():
    with pytest.raises(ValueError, match=r"BraTS-GLI-2024.*BraTS-MET") as err:
        lesionwise_preset("BraTS-GOAT")
    assert "BraTS-GOAT" in str(err.value)


@pytest.mark.parametrize(
    ("name", "regions"),
    [
        pytest.param("BraTS-GLI", {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}, id="gli-2023"),
        pytest.param(
            "BraTS-GLI-2024",
            {"WT": (1, 2, 3), "TC": (1, 3), "NETC": (1,), "SNFH": (2,), "ET": (3,), "RC": (4,)},
            id="gli-2024",
        ),
        pytest.param(
            "BraTS-PED-2024",
            {"WT": (1, 2, 3, 4), "TC": (1, 2, 3), "ET": (1,), "NETC": (2,), "CC": (3,)}
            | {"ED": (4,)},
            id="ped-2024",
        ),
        pytest.param("BraTS-MET-2024", {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}, id="met-2024"),
        pytest.param("BraTS-MEN-RT-2024", {"GTV": (1,)}, id="men-rt-2024"),
    ],
)
def test_region_label_sets(name, regions):
    assert lesionwise_preset(name).region_labels == regions


def test_gli_2024_dilation_and_thresholds_per_region():
    regions = {
        r.name: (r.dilation, r.volume_threshold_mm3)
        for r in lesionwise_preset("BraTS-GLI-2024").regions
    }
    # NETC and RC dilate by 5; SNFH keeps 3 (the script tests "SFNH"); ET's threshold is 10
    assert regions == {
        "WT": (3, 20),
        "TC": (3, 20),
        "NETC": (5, 20),
        "SNFH": (3, 20),
        "ET": (3, 10),
        "RC": (5, 20),
    }


def _labels(*parts: tuple[np.ndarray, int]) -> np.ndarray:
    y = np.zeros(SHAPE, np.uint8)
    for mask, label in parts:
        y[mask] = label
    return y


def test_report_rows_2023_vs_2024_gli():
    # oedema (2) around an enhancing core (3), plus a resection cavity (4) in the 2024 map
    y = _labels((cube(5, 5, 5, 10), 2), (cube(8, 8, 8, 4), 3), (cube(25, 25, 25, 4), 4))
    rows = lesionwise_report(y, y, spacing=(1, 1, 1), rules="BraTS-GLI-2024", case_id="c1")
    assert [r["region"] for r in rows] == ["wt", "tc", "netc", "snfh", "et", "rc"]
    assert set(rows[0]) == {"case", "region", "lesionwise_dice", "lesionwise_hd95"} | {
        "num_tp",
        "num_fp",
        "num_fn",
    }
    # NETC (label 1) is absent: nothing to score there
    scores = {r["region"]: (r["lesionwise_dice"], r["num_tp"]) for r in rows}
    assert scores == {"wt": (1.0, 1), "tc": (1.0, 1), "netc": (1.0, 0), "snfh": (1.0, 1)} | {
        "et": (1.0, 1),
        "rc": (1.0, 1),
    }
    # label 4 is no 2023 label: refused instead of silently ignored
    with pytest.raises(ValueError, match=r"case 'c1'.*labels \[4\]"):
        lesionwise_report(y, y, spacing=(1, 1, 1), rules="BraTS-GLI", case_id="c1")


def test_gli_2024_penalty_337_on_missed_regions():
    y = _labels((cube(5, 5, 5, 10), 2), (cube(8, 8, 8, 4), 3))
    rows = lesionwise_report(np.zeros_like(y), y, spacing=(1, 1, 1), rules="BraTS-GLI-2024")
    hd95 = {r["region"]: r["lesionwise_hd95"] for r in rows}
    assert hd95 == {"wt": 337.0, "tc": 337.0, "netc": 0.0, "snfh": 337.0, "et": 337.0, "rc": 0.0}


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # 2023: the two ET cubes (64 mm^3 each, 16 voxels apart) are two lesions; only the
        # first is predicted -> (1 + 0) / 2, one FN
        pytest.param("BraTS-GLI", (0.5, 1, 0, 1), id="2023-two-lesions"),
        # 2024: both touch the same NETC bar, so they are one ET lesion of 128 mm^3 that the
        # first cube finds -> Dice 2 * 64 / (128 + 64) = 2/3, no FN
        pytest.param("BraTS-GLI-2024", (2 / 3, 1, 0, 0), id="2024-merged-by-netc"),
    ],
)
def test_cross_region_merge(rules, expected):
    et1, et2 = box((5, 10, 10), (9, 14, 14)), box((25, 10, 10), (29, 14, 14))
    netc = box((5, 14, 10), (29, 16, 14))  # face-adjacent to both ET cubes
    true = _labels((netc, 1), (et1, 3), (et2, 3))
    pred = _labels((et1, 3))
    et = next(
        r
        for r in lesionwise_report(pred, true, spacing=(1, 1, 1), rules=rules)
        if r["region"] == "et"
    )
    assert (et["lesionwise_dice"], et["num_tp"], et["num_fp"], et["num_fn"]) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    ("fp_size", "num_fp", "dice"),
    [
        # 2024 GLI deletes predicted ET lesions of <= 10 voxels before matching: 2^3 = 8 goes
        pytest.param(2, 0, 1.0, id="8-voxels-deleted"),
        # 3^3 = 27 stays and is an FP: 1 / (1 + 1)
        pytest.param(3, 1, 0.5, id="27-voxels-kept"),
    ],
)
def test_2024_prediction_filter(fp_size, num_fp, dice):
    true = _labels((cube(5, 5, 5, 5), 3))
    pred = _labels((cube(5, 5, 5, 5), 3), (cube(28, 28, 28, fp_size), 3))
    et = lesionwise_report(pred, true, spacing=(1, 1, 1), rules="BraTS-GLI-2024")[4]
    assert (et["region"], et["num_fp"], et["lesionwise_dice"]) == ("et", num_fp, dice)


def test_men_rt_2024_ignores_fps_and_uses_the_grid_diagonal():
    true = _labels((A, 1))
    # a 4^3 = 64 mm^3 FP (> 50, kept): counted but not scored -> Dice 1, HD95 0
    row = lesionwise_report(
        _labels((A, 1), (B, 1)), true, spacing=(1, 1, 1), rules="BraTS-MEN-RT-2024"
    )[0]
    assert (row["region"], row["lesionwise_dice"], row["lesionwise_hd95"], row["num_fp"]) == (
        "gtv",
        1.0,
        0.0,
        1,
    )
    # nothing predicted: HD95 = sqrt(40^2 + 40^2 + 40^2) = 69.28 (voxels, whatever the mm)
    row = lesionwise_report(
        np.zeros_like(true), true, spacing=(2, 2, 2), rules="BraTS-MEN-RT-2024"
    )[0]
    assert row["lesionwise_hd95"] == pytest.approx(math.sqrt(3 * 40**2))


@pytest.mark.parametrize(
    ("pred", "true", "kwargs", "match"),
    [
        pytest.param(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), {}, "shape", id="shape"),
        pytest.param(np.full((4, 4, 4), 0.5), np.zeros((4, 4, 4)), {}, "non-integer", id="probs"),
        pytest.param(np.full((4, 4, 4), 4), np.zeros((4, 4, 4)), {}, r"labels \[4\]", id="2021"),
        pytest.param(
            np.zeros((4, 4, 4)),
            np.zeros((4, 4, 4)),
            {"spacing": (1, 0, 1)},
            "spacing",
            id="spacing",
        ),
        pytest.param(
            np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), {"rules": "BraTS-X"}, "BraTS-GLI", id="rules"
        ),
    ],
)
def test_invalid_input_raises(pred, true, kwargs, match):
    args = {"spacing": (1, 1, 1), "rules": "BraTS-GLI", "case_id": "BraTS-GLI-00000-000"}
    with pytest.raises(ValueError, match=match):
        lesionwise_report(pred, true, **(args | kwargs))


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten random ellipsoids (some far apart, some merged) and a shifted, ragged prediction."""
    rng = np.random.default_rng(seed)
    shape = (96, 80, 64)
    grid = np.indices(shape)
    true = np.zeros(shape, bool)
    for _ in range(10):
        center, radii = rng.uniform(4, np.array(shape) - 4), rng.uniform(1.5, 4.0, 3)
        true |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii, strict=True)) <= 1
    near = ndimage.binary_dilation(true, iterations=2)
    pred = np.roll(true, 1, axis=0) ^ (near & (rng.random(shape) < 0.05))  # ragged boundary
    return pred, true


@pytest.mark.parametrize("seed", [0, 5], ids=["2-islands", "3-islands"])
def test_islands_change_nothing(monkeypatch, seed):
    pred, true = _random_case(seed)
    args = {"spacing": (1.0, 1.2, 0.8), **GLI23}
    # the seeds give 2 and 3 islands, one of them with another island's blocks in its box
    islands = lesionwise_module._islands(pred | true, 8)
    assert len(islands) > 1 and any(mask is not Ellipsis for _, mask in islands)
    split = lesionwise_region(pred, true, **args)
    whole = [(tuple(slice(0, n) for n in true.shape), Ellipsis)]
    monkeypatch.setattr(lesionwise_module, "_islands", lambda fg, block: whole)
    single = lesionwise_region(pred, true, **args)
    assert _scores(split) == _scores(single)
    key = sorted((s.volume_mm3, s.dice, s.hd95) for s in split.lesions)
    assert key == sorted((s.volume_mm3, s.dice, s.hd95) for s in single.lesions)


def test_lesion_hd95_matches_whole_volume_deepmind(deepmind_sd):
    # the official way, on the whole volume: dilate each merged lesion, take every predicted
    # component touching it, and call DeepMind's surface-distance on the full masks
    pred, true = _random_case(2)
    spacing = (1.0, 1.2, 0.8)
    cross = ndimage.generate_binary_structure(3, 2)
    conn = ndimage.generate_binary_structure(3, 3)
    dilated, n = ndimage.label(ndimage.binary_dilation(true, cross, iterations=3), conn)
    pred_ids, _ = ndimage.label(pred, conn)
    expected = []
    for j in range(1, n + 1):
        lesion = true & (dilated == j)
        region = ndimage.binary_dilation(lesion, cross, iterations=3)
        matched = np.isin(pred_ids, np.setdiff1d(np.unique(pred_ids[region]), [0]))
        if not matched.any():
            continue
        sd = deepmind_sd.compute_surface_distances(lesion, matched, spacing)
        expected.append((dice_score(matched, lesion), deepmind_sd.compute_robust_hausdorff(sd, 95)))
    result = lesionwise_region(pred, true, spacing=spacing, **GLI23)
    found = [(s.dice, s.hd95) for s in result.lesions if s.matched]
    assert len(expected) > 3
    np.testing.assert_allclose(sorted(found), sorted(expected), rtol=0, atol=1e-9)


def test_docstring_examples():
    result = doctest.testmod(lesionwise_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

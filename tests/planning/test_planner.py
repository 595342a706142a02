"""Tests for mrivol.planning.planner and plans I/O (nnU-Net v2 rules)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mrivol.planning import (
    estimate_feature_map_size,
    nnunet_axis_order,
    plan_from_fingerprint,
    pool_and_conv_props,
    read_plans,
    write_plans,
)


def _fingerprint(spacings: list, shapes: list, **extra) -> dict:
    return {"spacings": spacings, "shapes_after_crop": shapes} | extra


def test_brats_like_isotropic_plan() -> None:
    """1 mm isotropic 240x240x155 four-channel cases, labels {0, 1, 2, 3}.

    Derivation (nnU-Net v2 rules):
    * target spacing = median = (1, 1, 1); no axis is anisotropic.
    * initial patch: 1/spacing scaled to 256^3 = (256, 256, 256), clipped to the median shape
      (240, 240, 155). Pooling: all spacings equal, every axis pooled while >= 8 voxels,
      capped at 6 stages -> 5 pools, divisor 32 -> padded to (256, 256, 160).
    * memory estimate (sum of conv feature maps, encoder 2 convs/stage, decoder 2 convs +
      transposed conv, 4 output classes) for (256, 256, 160) is 2.27e9 > 560e6 (8 GB budget),
      so the axis largest relative to (240, 240, 155) is shrunk by its divisor step, ties
      to the last axis in nnU-Net's (z, y, x) order, so x before y: (224, 256, 160),
      (224, 224, 160), (224, 224, 128), (192, 224, 128), (192, 192, 128), (192, 192, 112),
      (160, 192, 112), (160, 160, 112), (160, 160, 96).
    * (160, 160, 96): x, y pooled 5x (160 -> 5), z 4x (96 -> 6; 6 < 8 stops), so the last
      stride is (2, 2, 1). Stage voxels 2457600, 307200, 38400, 4800, 600, 150 with filters
      32, 64, 128, 256, 320, 320: encoder 2 * 104688000, decoder 3 * 104640000, output
      4 * 2457600 -> 533126400 <= 560e6 (the previous candidate gave 621980800).
    * batch size round(560e6 / 533126400 * 2) = 2; kernels 3 everywhere (isotropic).
    """
    fp = _fingerprint(
        [[1.0, 1.0, 1.0]] * 4,
        [[240, 240, 155]] * 4,
        labels=[0, 1, 2, 3],
        channel_names=["t1", "t1ce", "t2", "flair"],
        median_relative_size_after_cropping=0.5,
    )
    plans = plan_from_fingerprint(fp, gpu_memory_gb=8)
    assert plans["target_spacing"] == [1.0, 1.0, 1.0]
    assert plans["patch_size"] == [160, 160, 96]
    assert plans["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * 4 + [[2, 2, 1]]
    assert plans["kernel_sizes"] == [[3, 3, 3]] * 6
    assert plans["filters"] == [32, 64, 128, 256, 320, 320]
    assert plans["num_pool_per_axis"] == [5, 5, 4]
    assert plans["batch_size"] == 2
    assert plans["memory"]["estimate_feature_map_elements"] == 533_126_400
    assert plans["normalization"]["schemes"] == ["ZScoreNormalization"] * 4
    assert plans["normalization"]["use_mask_for_norm"] == [True] * 4  # cropped to < 3/4


def test_brats_cropped_shape_gives_classic_128_patch() -> None:
    """Median brain bounding box ~ (140, 170, 140): nnU-Net's BraTS plan, 128^3, 6 stages.

    256 clipped to (140, 170, 140), 5 pools -> (160, 192, 160); shrinking by 32 along the
    relatively largest axis ends at (128, 128, 128), estimate 454893568 <= 560e6 -> batch 2.
    """
    plans = plan_from_fingerprint(
        _fingerprint([[1.0, 1.0, 1.0]] * 3, [[140, 170, 140]] * 3, labels=[0, 1, 2, 3])
    )
    assert plans["patch_size"] == [128, 128, 128]
    assert plans["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * 5
    assert plans["memory"]["estimate_feature_map_elements"] == 454_893_568
    assert plans["batch_size"] == 2


@pytest.mark.parametrize("slices", [31, 32], ids=["31-slices", "32-slices"])
def test_ties_break_as_nnunet_in_simpleitk_axis_order(slices: int) -> None:
    """1 x 1 x 5 mm, 240 x 240 plane: nnU-Net v2 plans 224 x 256 x 32 in (x, y, z).

    nnU-Net's axes are SimpleITK's (z, y, x); x and y are equally large relative to the median
    shape, and ``np.argsort(...)[-1]`` picks the last tied axis, x. Planned in the data's own
    (x, y, z) order the tie would go to y (256 x 224 x 32).
    """
    plans = plan_from_fingerprint(
        _fingerprint([[1.0, 1.0, 5.0]] * 5, [[240, 240, slices]] * 5, labels=[0, 1, 2, 3])
    )
    assert plans["patch_size"] == [224, 256, 32]
    assert plans["nnunet_axis_order"] == [2, 1, 0]
    assert plans["target_spacing"] == [1.0, 1.0, 5.0]
    assert all(st[2] == 1 for st in plans["strides"][1:3])  # z pooled only once within 2x


@pytest.mark.parametrize(
    ("spacing", "order"),
    [([1.0, 1.0, 1.0], [2, 1, 0]), ([1.0, 1.0, 5.0], [2, 1, 0]), ([3.0, 1.0, 1.0], [0, 2, 1])],
    ids=["isotropic", "coarse-z", "coarse-x"],
)
def test_nnunet_axis_order_is_reversed_with_the_coarsest_first(spacing, order) -> None:
    assert nnunet_axis_order(spacing) == order


def test_anisotropic_plan() -> None:
    """100 cases of 160x160x24 voxels at 0.5 x 0.5 x 3 mm, 2 classes.

    Derivation:
    * z is anisotropic (3 > 3 * 0.5 and 24 * 3 < 160): target z = 10th percentile = 3.0.
    * initial patch: 1/spacing = (2, 2, 1/3) scaled to 256^3 -> (465, 465, 78), clipped to
      the median shape (160, 160, 24).
    * pooling (spacing -> size): stage 1 only x, y (z is 6x the finest) with kernel (3, 3, 1)
      -> (1, 1, 3) mm, (80, 80, 24); stage 2 again x, y (z 3x) kernel (3, 3, 1) -> (2, 2, 3),
      (40, 40, 24); stage 3 z within 2x -> all pooled, kernel (3, 3, 3) -> (20, 20, 12);
      stage 4 all -> (10, 10, 6); stage 5 z = 6 < 8 -> x, y only -> (5, 5, 6). 6 stages.
      Divisor (32, 32, 8) already divides (160, 160, 24).
    * estimate: stage voxels 614400, 153600, 38400, 4800, 600, 150 -> encoder 2 * 35875200
      + decoder 3 * 35827200 + 2 * 614400 = 180460800 <= 560e6, so no shrinking;
      batch round(560e6 / 180460800 * 2) = 6, capped by 5% of the dataset voxels:
      round(100 * 614400 * 0.05 / 614400) = 5.
    """
    plans = plan_from_fingerprint(_fingerprint([[0.5, 0.5, 3.0]] * 100, [[160, 160, 24]] * 100))
    assert plans["target_spacing"] == [0.5, 0.5, 3.0]
    assert plans["patch_size"] == [160, 160, 24]
    assert plans["strides"] == [
        [1, 1, 1], [2, 2, 1], [2, 2, 1], [2, 2, 2], [2, 2, 2], [2, 2, 1],
    ]  # fmt: skip
    assert plans["kernel_sizes"] == [[3, 3, 1], [3, 3, 1]] + [[3, 3, 3]] * 4
    assert plans["memory"]["estimate_feature_map_elements"] == 180_460_800
    assert plans["batch_size"] == 5


@pytest.mark.parametrize(
    ("z_spacings", "shape", "expected_z"),
    [
        # anisotropic spacing and few z voxels: 10th percentile of (2.5, 3, 3, 3, 4) = 2.7
        ([2.5, 3.0, 3.0, 3.0, 4.0], [320, 320, 40], 2.7),
        # many z voxels (200 * 3 >= 320): not "anisotropic voxels" -> median 3.0
        ([2.5, 3.0, 3.0, 3.0, 4.0], [320, 320, 200], 3.0),
        # z only 2x coarser: not anisotropic -> median
        ([1.0, 1.0, 1.0, 1.0, 1.5], [320, 320, 40], 1.0),
    ],
    ids=["tenth-percentile", "many-slices-median", "mild-median"],
)
def test_target_spacing_rule(z_spacings: list, shape: list, expected_z: float) -> None:
    fp = _fingerprint([[0.5, 0.5, z] for z in z_spacings], [shape] * len(z_spacings))
    assert plan_from_fingerprint(fp)["target_spacing"][2] == pytest.approx(expected_z)


@pytest.mark.parametrize("gpu_gb", [2, 8, 24], ids=["2GB", "8GB", "24GB"])
def test_plan_invariants(gpu_gb: float) -> None:
    fp = _fingerprint([[1.0, 1.0, 1.0]] * 5, [[180, 200, 150]] * 5, labels=[0, 1])
    plans = plan_from_fingerprint(fp, gpu_memory_gb=gpu_gb)
    patch, strides = np.array(plans["patch_size"]), np.array(plans["strides"])
    divisor = np.prod(strides, axis=0)
    assert np.all(patch % divisor == 0)
    assert np.all(patch // divisor >= 4)  # bottleneck feature map >= 4
    assert len(strides) <= 6 and plans["batch_size"] >= 2
    assert plans["memory"]["estimate_feature_map_elements"] <= 560e6 * gpu_gb / 8
    assert all(f == min(32 * 2**i, 320) for i, f in enumerate(plans["filters"]))


def test_more_memory_never_gives_a_smaller_patch() -> None:
    fp = _fingerprint([[1.0, 1.0, 1.0]] * 3, [[200, 200, 200]] * 3)
    sizes = [np.prod(plan_from_fingerprint(fp, gpu_memory_gb=g)["patch_size"]) for g in (4, 8, 16)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_pool_and_conv_props_single_axis_needs_three_times_min_size() -> None:
    # only z can pool after x, y reach < 8; z needs >= 12 to pool alone
    strides, kernels, patch, divisor = pool_and_conv_props([1.0, 1.0, 1.0], [8, 8, 11])
    assert strides == [[1, 1, 1], [2, 2, 2]] and divisor == [2, 2, 2] and patch == [8, 8, 12]
    assert kernels == [[3, 3, 3], [3, 3, 3]]


def test_estimate_matches_hand_count() -> None:
    # 2 stages of (4, 4, 4) -> (2, 2, 2), filters 2, 4, 3 classes:
    # encoder 2*2*64 + 2*4*8 = 320; decoder 3*2*64 = 384; output 3*64 = 192
    assert (
        estimate_feature_map_size([4, 4, 4], [[1, 1, 1], [2, 2, 2]], [2, 4], num_classes=3) == 896
    )


@pytest.mark.parametrize(
    "fp",
    [{}, _fingerprint([[1.0, 1.0]], [[10, 10, 10]]), _fingerprint([[1.0, 0, 1.0]], [[9, 9, 9]])],
    ids=["empty", "mismatched", "zero-spacing"],
)
def test_invalid_fingerprint_raises(fp: dict) -> None:
    with pytest.raises(ValueError, match="plan_from_fingerprint"):
        plan_from_fingerprint(fp)


def test_plans_roundtrip_and_atomic_write(tmp_path: Path) -> None:
    plans = plan_from_fingerprint(_fingerprint([[1.0, 1.0, 1.0]] * 2, [[64, 64, 64]] * 2))
    path = write_plans(plans, tmp_path / "sub" / "plans.json")
    assert read_plans(path) == json.loads(json.dumps(plans))
    assert [p.name for p in path.parent.iterdir()] == ["plans.json"]  # no temp file left
    assert "rules" in plans and plans["references"]


def test_read_plans_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mrivol plan"):
        read_plans(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"patch_size": [1, 1, 1]}')
    with pytest.raises(ValueError, match="lacks"):
        read_plans(tmp_path / "bad.json")

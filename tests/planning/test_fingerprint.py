"""Tests for mrivol.networks.compute_fingerprint on tiny NIfTI files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrivol.planning import FingerprintError, compute_fingerprint, plan_from_fingerprint

from .conftest import SHAPE, SPACING


@pytest.mark.parametrize("num_workers", [1, 2], ids=["serial", "two-processes"])
def test_fingerprint_with_labels(nifti_cases: list[dict[str, str]], num_workers: int) -> None:
    fp = compute_fingerprint(
        nifti_cases, image_keys=["t1", "flair"], label_key="seg", num_workers=num_workers
    )
    assert fp["num_cases"] == 2 and fp["channel_names"] == ["t1", "flair"]
    assert np.allclose(fp["spacings"], [SPACING] * 2)
    assert fp["shapes_before_crop"] == [list(SHAPE)] * 2
    assert fp["shapes_after_crop"] == [[14, 16, 12]] * 2  # the non-zero region
    assert fp["median_relative_size_after_cropping"] == pytest.approx(14 * 16 * 12 / np.prod(SHAPE))
    assert fp["labels"] == [0, 1, 2] and fp["foreground_source"] == "label"
    # 300 foreground voxels per case < samples_per_case: the statistics use all of them
    for c, key in enumerate(("t1", "flair")):
        values = np.concatenate(
            [
                nib.load(case[key]).get_fdata()[nib.load(case["seg"]).get_fdata() > 0]
                for case in nifti_cases
            ]
        )
        props = fp["foreground_intensity_properties_per_channel"][str(c)]
        assert props["mean"] == pytest.approx(values.mean(), rel=1e-5)
        assert props["std"] == pytest.approx(values.std(), rel=1e-4)
        assert props["percentile_99_5"] == pytest.approx(np.percentile(values, 99.5), rel=1e-5)
        assert props["percentile_00_5"] == pytest.approx(np.percentile(values, 0.5), rel=1e-5)
        assert props["median"] == pytest.approx(np.median(values), rel=1e-5)


def test_fingerprint_without_labels_uses_nonzero_region(nifti_cases: list[dict[str, str]]) -> None:
    fp = compute_fingerprint(nifti_cases, image_keys=["t1"], samples_per_case=50)
    assert fp["labels"] == [] and fp["foreground_source"] == "nonzero"
    props = fp["foreground_intensity_properties_per_channel"]["0"]
    assert 50 < props["mean"] < 150 and props["min"] > 0  # background zeros excluded


def test_fingerprint_sampling_is_seeded(nifti_cases: list[dict[str, str]]) -> None:
    a = compute_fingerprint(nifti_cases, image_keys=["t1"], samples_per_case=20, seed=3)
    b = compute_fingerprint(nifti_cases, image_keys=["t1"], samples_per_case=20, seed=3)
    c = compute_fingerprint(nifti_cases, image_keys=["t1"], samples_per_case=20, seed=4)
    assert a == b and a != c


def test_fingerprint_feeds_the_planner(nifti_cases: list[dict[str, str]]) -> None:
    fp = compute_fingerprint(nifti_cases, image_keys=["t1", "flair"], label_key="seg")
    plans = plan_from_fingerprint(fp)
    assert plans["target_spacing"] == pytest.approx(SPACING)
    # median shape (14, 16, 12) at (1, 1.2, 2) mm: stage 1 pools x, y (z is 2x the finest,
    # kernel 1 on z) -> (7, 8, 12) at (2, 2.4, 2); stage 2: x < 8 stops, y and z within 2x
    # -> (7, 4, 6); then no axis >= 8. Divisor (2, 4, 2) divides (14, 16, 12): no padding.
    assert plans["patch_size"] == [14, 16, 12]
    assert plans["strides"] == [[1, 1, 1], [2, 2, 1], [1, 2, 2]]
    assert plans["kernel_sizes"] == [[3, 3, 1], [3, 3, 3], [3, 3, 3]]
    assert len(plans["normalization"]["schemes"]) == 2


def test_failures_are_collected_per_case(nifti_cases: list[dict[str, str]], tmp_path: Path) -> None:
    bad_shape = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.float32), np.eye(4)), bad_shape)
    bad_spacing = tmp_path / "coarse.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.float32), np.diag([2.0, 2, 2, 1])), bad_spacing)
    cases = [
        nifti_cases[0],
        nifti_cases[1] | {"case_id": "sub-missing", "t1": str(tmp_path / "missing.nii.gz")},
        nifti_cases[1] | {"case_id": "sub-mismatch", "flair": str(bad_shape)},
        nifti_cases[1] | {"case_id": "sub-spacing", "flair": str(bad_spacing)},
    ]
    with pytest.raises(FingerprintError) as err:
        compute_fingerprint(cases, image_keys=["t1", "flair"], label_key="seg")
    message = str(err.value)
    assert "3 of 4 cases failed" in message
    assert "sub-missing" in message and "missing.nii.gz" in message
    assert "sub-mismatch" in message and "co-register" in message
    assert "sub-spacing" in message and "spacing (2.0, 2.0, 2.0)" in message
    assert "sub-00" not in message


@pytest.mark.parametrize(
    ("cases", "keys"), [([], ["t1"]), ([{"t1": "x.nii.gz"}], [])], ids=["no-cases", "no-keys"]
)
def test_empty_input_raises(cases: list, keys: list) -> None:
    with pytest.raises(ValueError, match="compute_fingerprint"):
        compute_fingerprint(cases, image_keys=keys)

"""The named steps of ``mrivol train``: the data, the network plan, the case counts."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from mrivol.planning import read_plans, write_plans
from mrivol.training.run import case_counts, ensure_plans, resolve_manifest

PLANS = {"strides": [[1, 1, 1], [2, 2, 2]], "kernel_sizes": [[3, 3, 3]] * 2, "filters": [4, 8],
         "patch_size": [96, 80, 64], "target_spacing": [1.0, 1.2, 1.5]}  # fmt: skip


def _parser(**config) -> ConfigParser:
    return ConfigParser({"spacing": [2.0, 2.0, 2.0], "roi_size": [64, 64, 64], **config})


def test_a_given_manifest_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_manifest("brats_seg", "cpu", tmp_path / "missing.csv")


def test_networks_without_a_plan_keep_their_geometry():
    parser = _parser()
    assert ensure_plans(parser, manifest=None) is None
    assert parser["spacing"] == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("planned", [True, False], ids=["plan-geometry", "profile-geometry"])
def test_plan_geometry_replaces_spacing_and_patch_only_when_the_profile_asks(tmp_path, planned):
    path = write_plans(PLANS, tmp_path / "m.plans.json")
    parser = _parser(plans_file=str(path), plan_geometry=planned)
    assert ensure_plans(parser, manifest=tmp_path / "m.csv") == PLANS
    assert parser["spacing"] == (PLANS["target_spacing"] if planned else [2.0, 2.0, 2.0])
    assert parser["roi_size"] == (PLANS["patch_size"] if planned else [64, 64, 64])


def test_a_missing_plan_is_made_once_from_the_manifest(tmp_path, tiny_brats_manifest):
    path = tmp_path / "tiny.plans.json"
    ensure_plans(_parser(plans_file=str(path)), manifest=tiny_brats_manifest)
    first = path.stat().st_mtime_ns
    assert read_plans(path)["manifest_hash"]
    ensure_plans(_parser(plans_file=str(path)), manifest=tiny_brats_manifest)
    assert path.stat().st_mtime_ns == first  # not planned again


def test_case_counts_follow_the_fold(tiny_brats_manifest):
    counts = case_counts(_parser(), tiny_brats_manifest, fold=0)
    assert counts == {"n_train": 4, "n_val": 2, "n_synthetic": 0}

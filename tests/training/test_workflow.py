"""Config assembly: which files a run merges, in which order, and clear errors."""

from __future__ import annotations

import pytest

from mrivol.paths import available_bundles, bundle_dir, shared_dir
from mrivol.training import available_networks, config_files


def test_brats_seg_is_available():
    assert "brats_seg" in available_bundles()
    assert "unet" in available_networks("brats_seg")


@pytest.mark.parametrize(
    ("workflow", "chain"),
    [
        ("train", ["train"]),
        ("evaluate", ["train", "shared/evaluate", "evaluate"]),  # the shared layer first
        ("inference", ["inference"]),
    ],
    ids=["train", "evaluate", "inference"],
)
def test_merge_order(workflow, chain):
    files = config_files("brats_seg", workflow, profile="cpu", net="unet")
    configs = bundle_dir("brats_seg") / "configs"
    expected = [shared_dir() / "base.yaml", shared_dir() / "supervised.yaml"]
    expected += [configs / "common.yaml"]
    expected += [
        shared_dir() / f"{c[7:]}.yaml" if c.startswith("shared/") else configs / f"{c}.yaml"
        for c in chain
    ]
    expected += [configs / "profiles" / "cpu.yaml", configs / "networks" / "unet.yaml"]
    assert files == expected
    assert all(f.is_file() for f in files)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"profile": "tpu", "net": "unet"}, "unknown profile 'tpu'"),
        ({"profile": "cpu", "net": "resnet"}, "no network 'resnet'; choose one of .*unet"),
    ],
    ids=["profile", "network"],
)
def test_unknown_choices_list_the_valid_ones(kwargs, match):
    with pytest.raises(ValueError, match=match):
        config_files("brats_seg", "train", **kwargs)


def test_workflow_a_bundle_lacks_is_refused(capsys):
    assert (
        config_files("brats_seg", "train", profile="cpu", net="unet", distributed=True)[4].name
        == "multi_gpu_train.yaml"
    )
    with pytest.raises(ValueError, match="'dcgan_aug' has no configs/multi_gpu_train.yaml"):
        config_files("dcgan_aug", "train", profile="cpu", net="dcgan", distributed=True)
    with pytest.raises(ValueError, match="no configs/evaluate.yaml: it does not support the eval"):
        config_files("dcgan_aug", "evaluate", profile="cpu", net="dcgan")
    from mrivol.cli import main

    assert main(["train", "--bundle", "dcgan_aug", "--gpus", "2"]) != 0  # before torchrun starts
    assert "does not support distributed" in capsys.readouterr().err


def test_unknown_bundle_lists_available():
    with pytest.raises(FileNotFoundError, match="available bundles: .*brats_seg"):
        bundle_dir("no_such_bundle")


@pytest.mark.parametrize(
    ("bundle", "shared"),
    [
        ("brats_seg", ["base.yaml", "supervised.yaml"]),
        ("ad_cls", ["base.yaml", "supervised.yaml", "t1_to_mni.yaml"]),
        ("dcgan_aug", ["base.yaml", "t1_to_mni.yaml"]),
    ],
    ids=["brats_seg", "ad_cls", "dcgan_aug"],
)
def test_shared_configs_come_first_in_metadata_order(bundle, shared):
    from mrivol.training import default_network

    files = config_files(bundle, "train", profile="cpu", net=default_network(bundle))
    assert files[: len(shared)] == [shared_dir() / name for name in shared]


def test_a_missing_shared_config_is_named(tmp_path, monkeypatch):
    import json
    import shutil

    root = tmp_path / "bundles"
    shutil.copytree(bundle_dir("brats_seg"), root / "brats_seg")
    meta = root / "brats_seg" / "configs" / "metadata.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "shared_configs": ["gone.yaml"]}))
    (tmp_path / "pyproject.toml").touch()
    monkeypatch.setenv("MRIVOL_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="brats_seg.*gone.yaml.*does not exist"):
        config_files("brats_seg", "train", profile="cpu", net="unet")

"""Assemble a bundle run: which config files, in which order, as a MONAI ``ConfigWorkflow``.

The bundle stays a stock MONAI bundle: this module only picks the files and applies overrides.
Merge order: the shared configs its ``metadata.json`` names (``shared_configs``, from
``bundles/shared/``: ``base.yaml`` for every bundle, ``supervised.yaml`` for the supervised
ones), ``common.yaml``, the workflow files, ``multi_gpu_train.yaml`` when distributed,
``profiles/<profile>.yaml``, ``networks/<net>.yaml``. The stock command in each bundle's
``docs/README.md`` lists the same files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mrivol.paths import bundle_dir, shared_dir

__all__ = [
    "PROFILES",
    "available_networks",
    "build_network",
    "build_workflow",
    "config_files",
    "default_network",
    "detect_profile",
    "profile_synth",
    "shared_configs",
]

PROFILES = ("cpu", "gpu")
# the workflow files merged after common.yaml: evaluation reuses train.yaml's `validate` section
WORKFLOW_CHAINS = {
    "train": ("train",),
    "evaluate": ("train", "evaluate"),
    "inference": ("inference",),
}
SHARED_WORKFLOW_LAYERS = ("evaluate",)  # bundles/shared/<name>.yaml before the bundle's own


def detect_profile() -> str:
    """``gpu`` when CUDA is available, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def available_networks(bundle: str) -> list[str]:
    """Network overlays of a bundle (``configs/networks/*.yaml``)."""
    return sorted(p.stem for p in (bundle_dir(bundle) / "configs" / "networks").glob("*.yaml"))


def default_network(bundle: str) -> str:
    """The network a bundle trains when none is named.

    ``default_network`` in its ``metadata.json``, else its only overlay, else ``unet``.
    """
    import json

    meta = json.loads((bundle_dir(bundle) / "configs" / "metadata.json").read_text())
    nets = available_networks(bundle)
    return meta.get("default_network") or (nets[0] if len(nets) == 1 else "unet")


def config_files(
    bundle: str, workflow: str, *, profile: str, net: str, distributed: bool = False
) -> list[Path]:
    """The config files of a run, in merge order (``multi_gpu_train.yaml`` after the workflow).

    The profile comes after the workflow: ``bundles/shared/profile_<profile>.yaml`` (settings
    every bundle's profile shares, when it exists), then the bundle's ``profiles/<profile>.yaml``,
    then the network overlay.

    Raises:
        ValueError: unknown profile or network (the message lists the valid ones), or a
            workflow the bundle has no config for (e.g. ``evaluate``, or a distributed run
            without ``multi_gpu_train.yaml``).
    """
    configs = bundle_dir(bundle) / "configs"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    nets = available_networks(bundle)
    if net not in nets:
        raise ValueError(
            f"bundle {bundle!r} has no network {net!r}; choose one of {', '.join(nets)}"
        )
    chain = WORKFLOW_CHAINS.get(workflow)
    if chain is None:
        raise ValueError(
            f"unknown workflow {workflow!r}; choose one of {', '.join(WORKFLOW_CHAINS)}"
        )
    files = [*shared_configs(bundle), configs / "common.yaml"]
    for name in chain:
        if name in SHARED_WORKFLOW_LAYERS:  # what every bundle's <name>.yaml shares, first
            files.append(shared_dir() / f"{name}.yaml")
        files.append(configs / f"{name}.yaml")
    if distributed:
        files.append(configs / "multi_gpu_train.yaml")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        what = (
            "distributed (--gpus / GPUS=) training" if distributed else f"the {workflow} workflow"
        )
        raise ValueError(
            f"bundle {bundle!r} has no configs/{missing[0]}: it does not support {what}; "
            f"its workflows: {', '.join(sorted(p.stem for p in configs.glob('*.yaml')))}."
        )
    shared_profile = shared_dir() / f"profile_{profile}.yaml"  # what every bundle's profile shares
    files += [shared_profile] if shared_profile.is_file() else []
    files += [configs / "profiles" / f"{profile}.yaml", configs / "networks" / f"{net}.yaml"]
    return files


def shared_configs(bundle: str) -> list[Path]:
    """The ``bundles/shared/`` files a bundle's ``metadata.json`` lists as ``shared_configs``.

    Raises:
        FileNotFoundError: a listed file does not exist (the message names the bundle).
    """
    import json

    meta = json.loads((bundle_dir(bundle) / "configs" / "metadata.json").read_text())
    files = [shared_dir() / name for name in meta.get("shared_configs", [])]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"bundle {bundle!r}: shared config {missing[0]} (listed in metadata.json "
            "shared_configs) does not exist"
        )
    return files


def build_workflow(
    bundle: str,
    workflow: str,
    *,
    profile: str,
    net: str,
    settings: Mapping[str, Any],
    distributed: bool = False,
) -> Any:
    """A :class:`monai.bundle.ConfigWorkflow` over the run's config files, ``settings`` applied."""
    from monai.bundle import ConfigWorkflow

    # overlays live in configs/profiles and configs/networks by design; MONAI warns about that
    logging.getLogger("monai.bundle.workflows").setLevel(logging.ERROR)
    return ConfigWorkflow(
        config_file=[
            str(f)
            for f in config_files(
                bundle, workflow, profile=profile, net=net, distributed=distributed
            )
        ],
        meta_file=str(bundle_dir(bundle) / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type="train"
        if workflow == "train"
        else "infer"
        if workflow == "inference"
        else "eval",
        **settings,
    )


def build_network(
    bundle: str,
    net: str,
    *,
    profile: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """The network a bundle trains (its ``network_def``), built from the bundle's own configs.

    No data is read: for plan-based networks pass ``{"plans": <plans dict>}`` in ``overrides``.
    Benchmarks and exports use this, so they time and ship the bundle's network, not a copy.

    Examples:
        >>> net = build_network("brats_seg", "unet")  # doctest: +SKIP
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files(bundle, "train", profile=profile, net=net)])
    parser.read_meta(str(bundle_dir(bundle) / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle_dir(bundle)), **dict(overrides or {})})
    return parser.get_parsed_content("network_def")


def profile_synth(bundle: str, profile: str) -> Mapping[str, Any]:
    """A profile's ``synth`` section: the phantoms ``mrivol train`` makes when no DATA is given."""
    from monai.bundle import ConfigParser

    config = ConfigParser.load_config_file(
        bundle_dir(bundle) / "configs" / "profiles" / f"{profile}.yaml"
    )
    if "synth" not in config:
        raise ValueError(
            f"profile {profile!r} of bundle {bundle!r} has no `synth` section: "
            "pass DATA=manifest.csv"
        )
    return config["synth"]

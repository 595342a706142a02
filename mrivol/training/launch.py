"""What a multi-process run does once, before torchrun starts the ranks.

Synthesising the default phantoms or fingerprinting a whole data set for a plan-based
network (``dynunet``) takes minutes on BraTS; done by rank 0 while the other ranks wait in a
barrier, the wait can outlast the process group's timeout (the NCCL watchdog kills the job
after 10 minutes by default). ``mrivol train --gpus N`` therefore prepares the data and the
plan in the launching process (:func:`prepare_before_ranks`) and only then starts torchrun;
the ranks find both on disk. Every node of a multi-node run prepares its own copy unless they
share the folder, in which case the later ones find it made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mrivol.paths import bundle_dir
from mrivol.training.workflow import config_files

__all__ = ["config_value", "prepare_before_ranks"]


def config_value(files: Sequence[Path], overrides: Mapping[str, Any] | None, key: str) -> Any:
    """A plain ``key`` of the merged ``files`` (``overrides`` win); ``None`` when absent."""
    from monai.bundle import ConfigParser

    if overrides and key in overrides:
        return overrides[key]
    config = ConfigParser.load_config_files([str(f) for f in files])
    return config.get(key)


def prepare_before_ranks(
    *,
    bundle: str,
    net: str,
    profile: str,
    data: str | Path | None,
    overrides: Mapping[str, Any] | None = None,
    processes: int = 2,
) -> Path:
    """Make the run's manifest (phantoms when ``data`` is ``None``) and, for a plan-based
    network, its plans file, in this (not yet distributed) process.

    Args:
        bundle: bundle name.
        net: network overlay; a ``plans_file`` key in it marks a plan-based network.
        profile: device profile (whose phantom set is made when ``data`` is ``None``).
        data: manifest CSV or ``None``.
        overrides: the run's ``--set`` overrides (they may move ``plans_file``).
        processes: how many ranks will start (for the message).

    Returns:
        The manifest the ranks train on.

    Raises:
        FileNotFoundError: ``data`` does not exist.
    """
    from monai.bundle import ConfigParser

    from mrivol.training.run import ensure_plans, resolve_manifest

    manifest = resolve_manifest(bundle, profile, data)
    files = config_files(bundle, "train", profile=profile, net=net, distributed=True)
    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    parser.update(
        {"bundle_root": str(bundle_dir(bundle)), "manifest": str(manifest.resolve())}
        | dict(overrides or {})
    )
    ensure_plans(
        parser,
        manifest,
        why=f" (once, before starting {processes} processes)",
        workers=min(os.cpu_count() or 1, 8),
    )
    return manifest

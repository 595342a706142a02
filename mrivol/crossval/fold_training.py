"""Train one fold of a cross-validation as a child run of its parent, with training's own resume.

The fold is an ordinary ``mrivol train`` run (same config files, profile, resume, DDP) created
with the parent's nesting tags. ``mrivol train`` continues a run of the same network, fold,
manifest and configuration that was killed and left a resume checkpoint, so an interrupted
fold resumes in the same child run. A child that cannot be continued (killed before its first
checkpoint, or failed) is taken out of the parent (its nesting tag removed, status ``KILLED``)
and the fold is trained afresh, so the parent ends with one child per fold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mrivol.crossval.parent_run import CvParent
from mrivol.paths import runs_dir
from mrivol.tracking.cv_runs import FOLD_TAG, PARENT_TAG, child_tags
from mrivol.training.resume import ResumeCheckpoint

__all__ = ["ABANDONED_TAG", "can_resume", "set_args", "train_fold"]

ABANDONED_TAG = "mrivol.cv_abandoned"  # on a former child: the parent it was taken out of


def can_resume(run: Any) -> bool:
    """A child ``mrivol train`` will continue: still "running" (killed) with a checkpoint."""
    ckpt = runs_dir() / run.info.run_name / "checkpoints"
    return run.info.status == "RUNNING" and ResumeCheckpoint.exists(ckpt)


def _abandon(parent: CvParent, run: Any, why: str) -> None:
    client = parent.client
    client.delete_tag(run.info.run_id, PARENT_TAG)
    client.set_tag(run.info.run_id, ABANDONED_TAG, parent.run_id)
    if run.info.status == "RUNNING":
        client.set_terminated(run.info.run_id, status="KILLED")
    print(f"  run {run.info.run_name} ({why}) taken out of {parent.run_name}", flush=True)


def set_args(overrides: Mapping[str, Any]) -> list[str]:
    """``--set key=value`` arguments of ``mrivol train`` (values as JSON, which YAML reads)."""
    args: list[str] = []
    for key, value in overrides.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    return args


def train_fold(
    parent: CvParent,
    *,
    bundle: str,
    net: str,
    fold: int,
    manifest: Path,
    profile: str,
    overrides: Mapping[str, Any],
    gpus: int = 1,
) -> str:
    """Train (or resume) ``fold`` as a child of ``parent``; returns the child's run id.

    Args:
        parent: the open CV parent.
        bundle, net, fold, manifest, profile: as ``mrivol train``.
        overrides: config overrides, ``max_epochs`` included.
        gpus: processes per node; above 1 the fold runs under torchrun (``mrivol train
            --gpus``), whose environment variables (NNODES, ...) apply unchanged.

    Raises:
        RuntimeError: the fold's training failed (the message names the fold and the run).
    """
    previous = parent.folds().get(fold)
    if previous is not None and not can_resume(previous):
        _abandon(parent, previous, f"{previous.info.status.lower()}, no resume checkpoint")
    tags = child_tags(parent.run_id, fold)
    if gpus > 1:
        cmd = [sys.executable, "-m", "mrivol.cli", "train", "--bundle", bundle, "--net", net]
        cmd += ["--fold", str(fold), "--data", str(manifest), "--profile", profile]
        cmd += ["--gpus", str(gpus), *set_args(overrides)]
        for key, value in tags.items():
            cmd += ["--tag", f"{key}={value}"]
        if subprocess.call(cmd) != 0:
            raise RuntimeError(f"fold {fold}: `{' '.join(cmd)}` failed")
    else:
        from mrivol.training import format_result, train

        result = train(
            bundle=bundle,
            net=net,
            data=manifest,
            fold=fold,
            profile=profile,
            overrides=dict(overrides),
            tracking_uri=parent.tracking_uri,
            resume=None,
            tags=tags,
        )
        print(format_result(result), flush=True)
    child = parent.folds().get(fold)
    if child is None or child.info.status != "FINISHED":
        state = "no run" if child is None else f"run {child.info.run_name} is {child.info.status}"
        raise RuntimeError(f"fold {fold} of {parent.run_name} did not finish training ({state})")
    same_fold = parent.client.search_runs(
        [parent.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}' and tags.`{FOLD_TAG}` = '{fold}'",
    )
    for run in same_fold:  # e.g. an older interrupted run that training did not pick
        if run.info.run_id != child.info.run_id:
            _abandon(parent, run, "superseded")
    return child.info.run_id

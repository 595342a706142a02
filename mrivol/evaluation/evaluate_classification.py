"""``mrivol evaluate`` of a classification run on an independent test manifest.

:func:`evaluate_classification` is three named steps: :func:`check_test_manifest` (the
leakage check ClinicaDL runs at prediction time: no synthetic test case, no test subject the
run trained or validated on, read from the run's own manifest and fold), :func:`score_test_set`
(the bundle's ``evaluate.yaml``: its validation preprocessing, network and
:class:`mrivol.evaluation.ClassificationReportHandler` on every real scan of the test manifest)
and :func:`log_test_results` (``test_*`` metrics, the report files and the test manifest's
identity into the training's MLflow run).

A bundle is a classification bundle when its ``metadata.json`` declares the network's ``pred``
output as ``probabilities`` (one vector per scan, e.g. ``ad_cls``); voxel outputs
(``brats_seg``, ``brats_multitask``'s label map) go to the segmentation path.

Reference: Wen et al., "Convolutional neural networks for classification of Alzheimer's
disease: overview and reproducible evaluation", Medical Image Analysis 63 (2020) (data
leakage; ClinicaDL's check of test participants against the training ones).

Examples:
    >>> evaluate_classification(bundle="ad_cls", run="<run id>", data="test.csv")  # doctest: +SKIP
    {'test_accuracy': 0.75, 'test_balanced_accuracy': 0.72, ...}
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mrivol.data import DataLeakageError, check_split, manifest_hash, read_manifest, to_datalist
from mrivol.inference.run_ref import RunRef, resolve_run
from mrivol.paths import bundle_dir, runs_dir

__all__ = [
    "ARTIFACT_PATH",
    "check_test_manifest",
    "evaluate_classification",
    "is_classification_bundle",
    "log_test_results",
    "score_test_set",
]

log = logging.getLogger(__name__)

ARTIFACT_PATH = "evaluation/test"  # where the report files go in the training run
PER_CASE = "test_per_case.csv"  # the handler's val_per_case.csv, renamed for a test set


def is_classification_bundle(bundle: str) -> bool:
    """Whether ``bundle`` classifies whole scans: its ``pred`` output is class probabilities.

    Read from ``network_data_format.outputs.pred.type`` in the bundle's ``metadata.json``
    (``probabilities`` for ``ad_cls``; ``image`` for the segmentation bundles).

    Examples:
        >>> is_classification_bundle("ad_cls"), is_classification_bundle("brats_seg")
        (True, False)
    """
    meta = json.loads((bundle_dir(bundle) / "configs" / "metadata.json").read_text())
    pred = meta.get("network_data_format", {}).get("outputs", {}).get("pred", {})
    return pred.get("type") == "probabilities"


def check_test_manifest(
    test: str | Path,
    *,
    training: str | Path | None,
    fold: int,
    training_hash: str | None = None,
    allow_subject_overlap: bool = False,
) -> list[str]:
    """Refuse a test manifest that leaks: synthetic cases, or subjects the run trained on.

    The run's training and validation subjects are those of ``training`` (its manifest) with
    ``fold`` as the validation fold: every real subject of that manifest.

    Args:
        test: the test manifest.
        training: the run's training manifest (``None``: unknown, e.g. a checkpoint file).
        fold: the run's validation fold.
        training_hash: sha256 the run logged for ``training``; a different file now fails.
        allow_subject_overlap: warn instead of refusing shared subjects or an unknown or
            changed training manifest (synthetic test cases are refused all the same).

    Returns:
        The subject ids shared with the training and validation sets (sorted; empty when none,
        or when the check could not run and ``allow_subject_overlap`` is set).

    Raises:
        DataLeakageError: synthetic rows in ``test``; shared subjects (named, with both
            manifests); the training manifest missing, unknown or changed since training.
    """
    df = read_manifest(test)
    if "synthetic" in df.columns:  # to_datalist drops them silently; a test set must not
        fake = df[df["synthetic"].astype(bool)]
        check_split(
            [],
            [{"case_id": c, "synthetic": True} for c in fake["case_id"]],
            name=f"test manifest {test}",
        )
    problem = _unusable_training_manifest(training, training_hash)
    if problem:
        if not allow_subject_overlap:
            raise DataLeakageError(
                f"test manifest {test}: cannot check its subjects against the run's: {problem}. "
                "Evaluate a run id whose training manifest is on disk, or pass "
                "--allow-subject-overlap to score without the check."
            )
        log.warning("%s: subject check skipped (--allow-subject-overlap): %s", test, problem)
        return []
    seen = {
        str(i["subject_id"])
        for split in ("train", "val")
        for i in to_datalist(training, fold=fold, split=split)
    }
    shared = sorted(seen & set(df["subject_id"].astype(str)))
    if shared and not allow_subject_overlap:
        raise DataLeakageError(
            f"test manifest {test}: {len(shared)} subject(s) also in the training or "
            f"validation set (fold {fold}) of the run's manifest {training}: "
            f"{', '.join(shared[:20])}{' ...' if len(shared) > 20 else ''}. Remove them from "
            "the test manifest, or pass --allow-subject-overlap to score anyway (the run is "
            "tagged test_subject_overlap)."
        )
    if shared:
        log.warning("%s: scoring %d subject(s) the run saw: %s", test, len(shared), shared)
    return shared


def _unusable_training_manifest(training: str | Path | None, expected: str | None) -> str:
    """Why the run's training manifest cannot be checked against (``""``: it can)."""
    if training is None:
        return "the run's training manifest is unknown (a checkpoint file, not a run id)"
    if not Path(training).is_file():
        return f"its training manifest {training} no longer exists"
    if expected and manifest_hash(training) != expected:
        return f"its training manifest {training} changed since training (sha256 differs)"
    return ""


def score_test_set(
    bundle: str, ref: RunRef, test: str | Path, out_dir: Path, overrides: Mapping[str, Any]
) -> tuple[dict[str, float], list[Path]]:
    """Run the bundle's ``evaluate.yaml`` on the test manifest; metrics and report files.

    Writes ``classification_summary.csv``, ``classification_per_class.csv``,
    ``confusion_matrix.{csv,png}``, ``test_per_case.csv`` (class probabilities per case) and
    ``gradcam/`` to ``out_dir``.

    Returns:
        ``test_<metric>`` (accuracy, balanced accuracy, macro averages, macro ROC-AUC),
        ``test_<precision|recall|specificity|f1|roc_auc>_<class>``, ``test_n_cases``; and the
        report files.

    Raises:
        ValueError: the bundle has no ``configs/evaluate.yaml``, or no report was written.
    """
    from mrivol.evaluation.evaluate import run_evaluator

    run_evaluator(bundle, ref, test, out_dir, overrides)
    summary, per_class = (
        out_dir / "classification_summary.csv",
        out_dir / "classification_per_class.csv",
    )
    if not (summary.is_file() and (out_dir / "val_per_case.csv").is_file()):
        raise ValueError(f"{bundle} evaluation of {test} wrote no report to {out_dir}")
    os.replace(out_dir / "val_per_case.csv", out_dir / PER_CASE)
    metrics = {f"test_{r.metric}": float(r.value) for r in pd.read_csv(summary).itertuples()}
    for row in pd.read_csv(per_class).to_dict("records"):
        for name in ("precision", "recall", "specificity", "f1", "roc_auc"):
            if name in row:
                metrics[f"test_{name}_{row['class']}"] = float(row[name])
    metrics["test_n_cases"] = float(len(pd.read_csv(out_dir / PER_CASE)))
    files = [
        summary,
        per_class,
        out_dir / "confusion_matrix.csv",
        out_dir / "confusion_matrix.png",
        out_dir / PER_CASE,
    ]
    gradcam = out_dir / "gradcam"
    return metrics, files + ([gradcam] if gradcam.is_dir() else [])


def log_test_results(
    ref: RunRef,
    metrics: Mapping[str, float],
    files: Sequence[Path],
    *,
    test: str | Path,
    shared_subjects: Sequence[str] = (),
) -> None:
    """The ``test_*`` metrics, report files (``evaluation/test/``) and test-set tags to the run.

    Tags (overwritten by a later evaluation): ``test_manifest``, ``test_manifest_sha256`` and,
    when subjects were shared (``--allow-subject-overlap``), ``test_subject_overlap``.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=ref.tracking_uri)
    for name, value in metrics.items():
        if np.isfinite(value):
            client.log_metric(ref.run_id, name, value)
    client.set_tag(ref.run_id, "test_manifest", str(Path(test).resolve()))
    client.set_tag(ref.run_id, "test_manifest_sha256", manifest_hash(test))
    overlap = ",".join(shared_subjects) if shared_subjects else "none"
    client.set_tag(ref.run_id, "test_subject_overlap", overlap)
    for path in files:
        if path.is_dir():
            client.log_artifacts(ref.run_id, str(path), f"{ARTIFACT_PATH}/{path.name}")
        else:
            client.log_artifact(ref.run_id, str(path), artifact_path=ARTIFACT_PATH)


def evaluate_classification(
    *,
    bundle: str,
    run: str,
    data: str | Path | None,
    out: str | Path | None = None,
    allow_subject_overlap: bool = False,
    overrides: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Score ``run`` on the test manifest ``data``; log the report to the same run.

    The steps of the module docstring. The training's overrides (input size, network) apply,
    then ``overrides``.

    Args:
        bundle: a classification bundle (``ad_cls``).
        run: MLflow run id or checkpoint file.
        data: the test manifest; all its real scans are scored, whatever their fold.
        out: report folder (default ``<runs>/test-<run>-<manifest stem>``).
        allow_subject_overlap: score even if test subjects were trained or validated on.
        overrides: further config overrides.
        **kwargs: passed to :func:`mrivol.inference.resolve_run`.

    Returns:
        The ``test_*`` metrics of :func:`score_test_set`.

    Raises:
        ValueError: no ``data``; DataLeakageError (a ValueError) from
            :func:`check_test_manifest`.
    """
    if data is None:
        raise ValueError(
            f"evaluating the {bundle} bundle needs a test manifest: --data test.csv "
            "(make evaluate ... DATA=test.csv), of subjects the run never saw"
        )
    ref = resolve_run(run, **kwargs)
    shared = check_test_manifest(
        data,
        training=ref.manifest,
        fold=ref.fold,
        training_hash=_logged_manifest_hash(ref),
        allow_subject_overlap=allow_subject_overlap,
    )
    name = ref.run_id or ref.checkpoint.stem
    out_dir = Path(out) if out else runs_dir() / f"test-{name}-{Path(data).stem}"
    metrics, files = score_test_set(
        bundle, ref, data, out_dir, {**ref.overrides, **dict(overrides or {})}
    )
    if ref.run_id is not None:
        log_test_results(ref, metrics, files, test=data, shared_subjects=shared)
    return metrics


def _logged_manifest_hash(ref: RunRef) -> str | None:
    """The ``manifest_hash`` param of the training run (``None`` for a checkpoint file)."""
    if ref.run_id is None:
        return None
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=ref.tracking_uri)
    return client.get_run(ref.run_id).data.params.get("manifest_hash")

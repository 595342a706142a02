"""Pool the out-of-fold predictions of a CV parent: metrics, post-processing, MLflow logging.

:func:`pool_oof` scores every fold that has its OOF predictions (:mod:`mrivol.crossval.oof`)
with :mod:`mrivol.crossval.cv_metrics`; :func:`tune_postprocessing` writes the parent's
``postprocessing.json``; :func:`log_to_parent` logs the metrics (pooled ones at the step of the
number of folds, per-fold ones at the fold) and the report files.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mrivol.crossval.cv_metrics import (
    CvScores,
    classification_cv_metrics,
    grid_segmentation_cv_metrics,
    segmentation_cv_metrics,
)
from mrivol.crossval.parent_run import CvParent
from mrivol.crossval.postprocessing_search import (
    OofScorer,
    PostprocessingSearch,
    search_postprocessing,
)
from mrivol.inference.infer import common_setting, label_convention
from mrivol.inference.postprocessing import write_postprocessing

__all__ = [
    "POSTPROCESSING_FILE",
    "log_to_parent",
    "manifest_labels",
    "oof_cases",
    "pool_oof",
    "tune_postprocessing",
]

POSTPROCESSING_FILE = "postprocessing.json"


def oof_cases(manifest: Path, folds: Sequence[int]) -> dict[str, tuple[int, str]]:
    """``{case: (fold, label path)}`` of the validation cases of ``folds``."""
    from mrivol.data import to_datalist

    return {
        item["case_id"]: (int(k), item["label"])
        for k in folds
        for item in to_datalist(manifest, fold=int(k), split="val")
    }


def manifest_labels(bundle: str, manifest: Path) -> str:
    """The label convention of the manifest's layout (``et_label``), else the bundle's."""
    from mrivol.data import manifest_settings

    return label_convention(bundle, manifest_settings(manifest).get("et_label"))


def pool_oof(
    parent: CvParent,
    bundle: str,
    manifest: Path,
    records: Mapping[int, Mapping[str, Any]],
    tasks: Mapping[str, Any],
) -> CvScores:
    """Pooled metrics over the folds in ``records``."""
    out_dir = parent.output_dir
    if tasks["original_grid"]:
        cases = oof_cases(manifest, sorted(records))
        return segmentation_cv_metrics(
            oof_dir=parent.oof_dir,
            out_dir=out_dir,
            truth={c: label for c, (_, label) in cases.items()},
            case_fold={c: k for c, (k, _) in cases.items()},
            labels=manifest_labels(bundle, manifest),
            challenge=common_setting(bundle, "lesionwise_rules"),
        )
    scores = CvScores()
    seg_rows = [r for rec in records.values() for r in rec.get("segmentation", [])]
    cls_rows = [r for rec in records.values() for r in rec.get("classes", [])]
    if seg_rows:
        scores = grid_segmentation_cv_metrics(seg_rows, out_dir=out_dir)
    if cls_rows:
        table = "oof_classes.csv" if seg_rows else "oof_per_case.csv"
        cls = classification_cv_metrics(
            cls_rows, class_names=tasks["class_names"], out_dir=out_dir, table=table
        )
        scores.metrics.update(cls.metrics)
        scores.per_fold.update(cls.per_fold)
        scores.files += cls.files
    return scores


def tune_postprocessing(
    parent: CvParent, bundle: str, manifest: Path, records: Mapping[int, Any]
) -> tuple[PostprocessingSearch, Path]:
    """Search the post-processing on the OOF label maps; write ``postprocessing.json``."""
    cases = oof_cases(manifest, sorted(records))
    labels = manifest_labels(bundle, manifest)
    scorer = OofScorer(
        {c: (parent.oof_dir / f"{c}_seg.nii.gz", label) for c, (_, label) in cases.items()},
        labels=labels,
        challenge=common_setting(bundle, "lesionwise_rules"),
    )
    search = search_postprocessing(scorer)
    path = write_postprocessing(
        search.rules,
        parent.output_dir / POSTPROCESSING_FILE,
        folds=sorted(records),
        n_cases=len(cases),
        labels=labels,
        **search.to_json(),
    )
    return search, path


def log_to_parent(
    parent: CvParent, scores: CvScores, extra: Mapping[str, float], files: Sequence[Path]
) -> None:
    """Log the pooled and per-fold metrics, ``extra`` and the report files to the parent."""
    import mlflow

    now, step = int(time.time() * 1000), len(next(iter(scores.per_fold.values()), {}))
    metrics = [mlflow.entities.Metric(k, float(v), now, step) for k, v in scores.metrics.items()]
    metrics += [mlflow.entities.Metric(k, float(v), now, step) for k, v in extra.items()]
    for name, by_fold in scores.per_fold.items():
        metrics += [mlflow.entities.Metric(name, float(v), now, k) for k, v in by_fold.items()]
    parent.client.log_batch(parent.run_id, metrics=metrics)
    for path in files:
        parent.client.log_artifact(parent.run_id, str(path))

"""Cross-validation runs in MLflow: the tags that mark a CV parent and its fold runs, lookups.

``mrivol cv`` logs one **parent run** per cross-validation (tag ``mrivol.cv = parent``, named
``<bundle>-<net>-cv-<timestamp>``) and one **child run** per fold: an ordinary training run
that also carries MLflow's own nesting tag ``mlflow.parentRunId`` (so the MLflow UI shows the
folds under the parent) and ``mrivol.cv_fold = <k>``. Everything here reads runs back with
MLflow's client; the training stage creates the runs (``mrivol.training.train(tags=...)``).

Examples:
    >>> make_cv_run_name("brats_seg", "unet", timestamp=0).startswith("brats_seg-unet-cv-")
    True
"""

from __future__ import annotations

import time
from typing import Any

__all__ = [
    "CV_TAG",
    "FOLD_TAG",
    "PARENT_TAG",
    "child_tags",
    "find_cv_parent",
    "fold_runs",
    "is_cv_parent",
    "make_cv_run_name",
]

CV_TAG = "mrivol.cv"  # "parent" on the CV parent run
FOLD_TAG = "mrivol.cv_fold"  # the fold of a child run
PARENT_TAG = "mlflow.parentRunId"  # MLflow's nesting tag (mlflow.utils.mlflow_tags)


def make_cv_run_name(bundle: str, net: str, *, timestamp: float | None = None) -> str:
    """Parent run name ``<bundle>-<net>-cv-<YYYYmmdd-HHMMSS>``."""
    stamp = time.strftime(
        "%Y%m%d-%H%M%S", time.localtime(time.time() if timestamp is None else timestamp)
    )
    return f"{bundle}-{net}-cv-{stamp}"


def child_tags(parent_run_id: str, fold: int) -> dict[str, str]:
    """The tags a fold run of ``parent_run_id`` is created with."""
    return {PARENT_TAG: parent_run_id, FOLD_TAG: str(int(fold))}


def is_cv_parent(run: Any) -> bool:
    """Whether an MLflow run (``mlflow.entities.Run``) is a CV parent."""
    return run.data.tags.get(CV_TAG) == "parent"


def fold_runs(client: Any, parent: Any) -> dict[int, Any]:
    """The child runs of a CV parent by fold (the newest one when a fold has several).

    Args:
        client: an :class:`mlflow.MlflowClient`.
        parent: the parent run (``mlflow.entities.Run``).

    Returns:
        ``{fold: run}``, sorted by fold.
    """
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=1000,
    )
    found: dict[int, Any] = {}
    for run in runs:
        fold = run.data.tags.get(FOLD_TAG)
        if fold is not None and int(fold) not in found:
            found[int(fold)] = run
    return dict(sorted(found.items()))


def find_cv_parent(
    client: Any, experiment_id: str, *, net: str, data_hash: str, settings_hash: str
) -> Any | None:
    """The newest CV parent of this network, manifest (content hash) and configuration.

    The configuration hash is the one training uses (``config_hash`` of the config files and
    overrides, epochs included), so a parent is never continued on other data or settings.
    """
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{CV_TAG}` = 'parent' and params.network = '{net}' and "
            f"params.manifest_hash = '{data_hash}' and params.config_hash = '{settings_hash}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None

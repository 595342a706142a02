"""The MLflow parent run of a cross-validation: found again by the same command, or created.

A parent is matched as training matches a run to resume: same bundle (experiment), network,
manifest (content hash) and configuration (:func:`mrivol.training.run_tracking.config_hash` of
the config files and the overrides, epochs included). Its folder ``<runs>/<parent name>/``
holds the out-of-fold predictions (``oof/``) and the reports logged as artifacts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrivol.paths import runs_dir
from mrivol.tracking.cv_runs import CV_TAG, find_cv_parent, fold_runs, make_cv_run_name
from mrivol.tracking.runs import ensure_experiment, environment_params, git_commit

__all__ = ["CvParent", "open_cv_parent"]


@dataclass
class CvParent:
    """An open CV parent run."""

    run_id: str
    run_name: str
    experiment_id: str
    tracking_uri: str
    client: Any
    continued: bool

    @property
    def output_dir(self) -> Path:
        """``<runs>/<parent name>``: OOF predictions, reports, ``postprocessing.json``."""
        return runs_dir() / self.run_name

    @property
    def oof_dir(self) -> Path:
        """The out-of-fold predictions: ``<case>_seg.nii.gz``, ``<case>_prob_<region>.nii.gz``."""
        return self.output_dir / "oof"

    def run(self) -> Any:
        """The parent's ``mlflow.entities.Run`` as the store has it now."""
        return self.client.get_run(self.run_id)

    def folds(self) -> dict[int, Any]:
        """The child runs by fold (:func:`mrivol.tracking.cv_runs.fold_runs`)."""
        return fold_runs(self.client, self.run())


def open_cv_parent(
    *,
    bundle: str,
    net: str,
    tracking_uri: str,
    params: Mapping[str, str],
    tags: Mapping[str, str] | None = None,
) -> CvParent:
    """Continue the parent of this bundle, network, manifest and configuration, or create one.

    Args:
        bundle: bundle (the experiment).
        net: network overlay.
        tracking_uri: MLflow store.
        params: the parent's params; must hold ``manifest_hash`` and ``config_hash``.
        tags: tags set (again) on the parent, e.g. the folds asked for.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment_id = ensure_experiment(bundle, tracking_uri)
    found = find_cv_parent(
        client,
        experiment_id,
        net=net,
        data_hash=params["manifest_hash"],
        settings_hash=params["config_hash"],
    )
    if found is not None:
        parent = CvParent(
            found.info.run_id, found.info.run_name, experiment_id, tracking_uri, client, True
        )
        if found.info.status != "RUNNING":
            client.update_run(parent.run_id, status="RUNNING")
    else:
        name = make_cv_run_name(bundle, net)
        run = client.create_run(experiment_id, run_name=name, tags={CV_TAG: "parent"})
        parent = CvParent(run.info.run_id, name, experiment_id, tracking_uri, client, False)
        all_params = {
            **params,
            "bundle": bundle,
            "network": net,
            "git_commit": git_commit(),
            **environment_params(),
        }
        client.log_batch(
            parent.run_id,
            params=[mlflow.entities.Param(k, str(v)) for k, v in all_params.items()],
        )
    for key, value in dict(tags or {}).items():
        client.set_tag(parent.run_id, key, value)
    parent.output_dir.mkdir(parents=True, exist_ok=True)
    return parent

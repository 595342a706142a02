"""Fold ensembles: every fold model of a CV parent run on new scans, averaged, post-processed.

``mrivol infer --run <cv parent run id>`` (and ``mrivol evaluate`` of a CV parent) run the
bundle's inference once per fold model, each on every input (on the input's own grid), then
per case:

* the region probabilities are averaged over the folds (weighted by their MC samples), the
  label map is the average above 0.5, and the parent's ``postprocessing.json`` (tuned on the
  OOF predictions by ``mrivol cv``) is applied;
* with ``mc_samples`` T > 1 the T MC-dropout samples are spread over the K fold models
  (:func:`spread_samples`) and the uncertainty of the pooled samples is written: predictive
  entropy ``H[p_mean]``, mutual information ``H[p_mean] - mean_k (H_k - MI_k)`` (the expected
  entropy of fold k is its predictive entropy minus its MI; a fold with one sample contributes
  ``H(p_k)``), so the between-fold disagreement is part of the epistemic map, and
  ``<case>_foldvar_<region>`` (variance of the fold means);
* ``tta``: each fold model mirrors its windows (:class:`mrivol.inference.tta.FlipTTA`).

nnU-Net v2 ensembles the folds the same way (the mean of the fold probabilities), by default.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mrivol.inference.postprocessing import (
    Postprocessing,
    apply_postprocessing,
    read_postprocessing,
)
from mrivol.inference.run_ref import RunRef, resolve_run
from mrivol.inference.save_case_outputs import save_nifti_atomic
from mrivol.paths import runs_dir
from mrivol.tracking.cv_runs import fold_runs, is_cv_parent
from mrivol.tracking.models import inference_overrides

__all__ = [
    "CvEnsemble",
    "OVERRIDES_TAG",
    "cv_ensemble",
    "ensemble_predict",
    "infer_ensemble",
    "is_cv_parent_run",
    "spread_samples",
    "tta_settings",
]

OVERRIDES_TAG = "mrivol.cv_overrides"  # the folds' config overrides (JSON) on the parent


def tta_settings(axes: Sequence[int] = (0, 1, 2)) -> dict[str, Any]:
    """The inference override that mirrors every window (:class:`~mrivol.inference.tta.FlipTTA`)."""
    flip = {"_target_": "mrivol.inference.tta.FlipTTA", "network": "@network", "axes": list(axes)}
    return {"infer#predictor#network": flip}


@dataclass
class CvEnsemble:
    """The fold models of a CV parent and what inference needs from the parent."""

    parent_run_id: str
    parent_run_name: str
    bundle: str
    models: dict[int, RunRef]
    postprocessing: Postprocessing | None
    overrides: dict[str, Any] = field(default_factory=dict)


def is_cv_parent_run(run: str, *, tracking_uri: str) -> bool:
    """Whether ``run`` is the id of a CV parent run in the store (a file path is not)."""
    if Path(run).is_file():
        return False
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return is_cv_parent(mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(run))
    except MlflowException:
        return False


def cv_ensemble(run: str, *, tracking_uri: str) -> CvEnsemble:
    """The finished fold models, tuned post-processing and overrides of CV parent ``run``.

    Raises:
        ValueError: ``run`` is not a CV parent, or none of its folds finished training.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    parent = client.get_run(run)
    if not is_cv_parent(parent):
        raise ValueError(f"run {run} is not a cross-validation parent (made by `mrivol cv`)")
    children = {k: r for k, r in fold_runs(client, parent).items() if r.info.status == "FINISHED"}
    if not children:
        raise ValueError(f"CV parent {parent.info.run_name} ({run}) has no finished fold run yet")
    models = {k: resolve_run(r.info.run_id, tracking_uri=tracking_uri) for k, r in children.items()}
    local: Path | None = runs_dir() / parent.info.run_name / "postprocessing.json"
    if not local.is_file():
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run, artifact_path="postprocessing.json", tracking_uri=tracking_uri
                )
            )
        except Exception:  # noqa: BLE001 - MLflow raises several types for a missing artifact
            local = None
    return CvEnsemble(
        run,
        parent.info.run_name,
        parent.data.params.get("bundle", "brats_seg"),
        models,
        read_postprocessing(local) if local is not None else None,
        json.loads(parent.data.tags.get(OVERRIDES_TAG, "{}")),
    )


def spread_samples(total: int, folds: int) -> list[int]:
    """MC samples per fold model: ``total`` spread as evenly as possible, at least 1 each.

    Examples:
        >>> spread_samples(10, 5), spread_samples(7, 3), spread_samples(1, 3)
        ([2, 2, 2, 2, 2], [3, 2, 2], [1, 1, 1])
    """
    if total < 1 or folds < 1:
        raise ValueError(f"need at least one sample and one fold, got {total} and {folds}")
    base, extra = divmod(max(total, folds), folds)
    return [base + (i < extra) for i in range(folds)]


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Binary entropy in nats, clipped away from 0 and 1."""
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return -(q * np.log(q) + (1 - q) * np.log(1 - q))


def _save(array: np.ndarray, affine: np.ndarray, path: Path, dtype: Any) -> None:
    save_nifti_atomic(nib.Nifti1Image(np.asarray(array, dtype=dtype), affine), affine, path)


def _load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, np.float32)


def _combine_case(
    case: str,
    fold_dirs: Mapping[int, Path],
    samples: Mapping[int, int],
    *,
    regions: Sequence[str],
    out: Path,
    labels: str,
    rules: Postprocessing | None,
    raw_dir: Path | None,
    uncertainty: bool = False,
) -> Path:
    """Average one case's fold outputs into ``out``; returns its label map.

    ``uncertainty``: write the entropy and MI of the pooled samples (``mc_samples`` > 1), even
    where every fold gave one (deterministic) sample: then the spread is between folds only.
    """
    from mrivol.transforms import BratsRegionsToLabels

    weights = {k: samples[k] / sum(samples.values()) for k in fold_dirs}
    first = nib.load(next(iter(fold_dirs.values())) / f"{case}_prob_{regions[0]}.nii.gz")
    affine, spacing = first.affine, tuple(float(z) for z in first.header.get_zooms()[:3])
    mean, expected, var = [], [], []
    for region in regions:
        probs = {k: _load(d / f"{case}_prob_{region}.nii.gz") for k, d in fold_dirs.items()}
        p_bar = sum(weights[k] * p for k, p in probs.items())
        aleatoric = np.zeros_like(p_bar)
        for k, d in fold_dirs.items():
            if samples[k] > 1:
                h = _load(d / f"{case}_entropy_{region}.nii.gz")
                aleatoric += weights[k] * (h - _load(d / f"{case}_mi_{region}.nii.gz"))
            else:
                aleatoric += weights[k] * binary_entropy(probs[k])
        mean.append(p_bar)
        expected.append(aleatoric)
        var.append(sum(weights[k] * (p - p_bar) ** 2 for k, p in probs.items()))
    masks = np.stack([m > 0.5 for m in mean])
    order = [list(regions).index(r) for r in ("tc", "wt", "et")]
    et = 4 if labels == "brats2021" else 3
    label_map = BratsRegionsToLabels(et_label=et)(masks[order])[0]
    if raw_dir is not None:
        _save(label_map, affine, raw_dir / f"{case}_seg.nii.gz", np.uint8)
    if rules is not None and not rules.is_identity:
        label_map = apply_postprocessing(label_map, rules, spacing=spacing, labels=labels)
    seg = out / f"{case}_seg.nii.gz"
    _save(label_map, affine, seg, np.uint8)
    for i, region in enumerate(regions):
        _save(mean[i], affine, out / f"{case}_prob_{region}.nii.gz", np.float32)
        if uncertainty:
            entropy = binary_entropy(mean[i])
            _save(entropy, affine, out / f"{case}_entropy_{region}.nii.gz", np.float32)
            mi = np.maximum(entropy - expected[i], 0.0)
            _save(mi, affine, out / f"{case}_mi_{region}.nii.gz", np.float32)
        if len(fold_dirs) > 1:
            _save(var[i], affine, out / f"{case}_foldvar_{region}.nii.gz", np.float32)
    return seg


def ensemble_predict(
    ensemble: CvEnsemble,
    datalist: Sequence[Mapping[str, Any]],
    out: str | Path,
    *,
    regions: Sequence[str] = ("tc", "wt", "et"),
    labels: str = "brats2021",
    tta: bool = False,
    mc_samples: int = 1,
    mc_batch_size: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    keep_folds: bool = False,
    postprocess: bool = True,
) -> list[Path]:
    """Segment ``datalist`` with every fold model of ``ensemble`` and combine (module docstring).

    Args:
        ensemble: from :func:`cv_ensemble`.
        datalist: inference items (``image``, ``case_id``).
        out: output folder.
        regions: the bundle's region channels, in channel order.
        labels: label convention of the written maps.
        tta: mirror every window along the three axes.
        mc_samples: MC-dropout samples in all, spread over the folds (1: deterministic).
        mc_batch_size: stochastic rows per forward call.
        overrides: config overrides on top of the folds' own.
        keep_folds: keep each fold's outputs (``folds/fold<k>/``) and the ensemble before
            post-processing (``raw/``), e.g. to score them; else they are removed.
        postprocess: apply the parent's tuned post-processing.

    Returns:
        The written label maps.
    """
    from mrivol.inference.infer import run_inference

    out = Path(out)
    folds = sorted(ensemble.models)
    samples = dict(zip(folds, spread_samples(int(mc_samples), len(folds)), strict=True))
    if mc_samples <= 1:
        samples = dict.fromkeys(folds, 1)
    settings = {**inference_overrides(ensemble.overrides), **dict(overrides or {})}
    if tta:
        settings.update(tta_settings())
    fold_dirs = {k: out / "folds" / f"fold{k}" for k in folds}
    for i, k in enumerate(folds, start=1):
        what = f"{samples[k]} MC sample(s)" + (", mirrored" if tta else "")
        print(f"fold model {k} ({i} of {len(folds)}): {len(datalist)} case(s), {what}", flush=True)
        run_inference(
            ensemble.models[k],
            ensemble.bundle,
            [dict(d) for d in datalist],
            fold_dirs[k],
            mc_samples=samples[k],
            mc_batch_size=mc_batch_size,
            **settings,
        )
    rules = ensemble.postprocessing if postprocess else None
    raw_dir = out / "raw" if keep_folds else None
    written = [
        _combine_case(
            str(item["case_id"]),
            fold_dirs,
            samples,
            regions=[r.lower() for r in regions],
            out=out,
            labels=labels,
            rules=rules,
            raw_dir=raw_dir,
            uncertainty=int(mc_samples) > 1,
        )
        for item in datalist
    ]
    if not keep_folds:
        shutil.rmtree(out / "folds", ignore_errors=True)
    return written


def infer_ensemble(
    *,
    bundle: str,
    run: str,
    input: str | Path,
    out: str | Path,
    tracking_uri: str,
    mc_samples: int = 1,
    mc_batch_size: int | None = None,
    submission: bool = False,
    overrides: Mapping[str, Any] | None = None,
    tta: bool = False,
) -> list[Path]:
    """``mrivol infer --run <cv parent>``: :func:`ensemble_predict` of every case of ``input``,
    then ``volumes.csv`` and, with ``submission``, the BraTS 2023+ files.

    Raises:
        ValueError: the parent belongs to another bundle, or is no CV parent.
    """
    from mrivol.inference.infer import (
        common_setting,
        input_datalist,
        label_convention,
        volume_report,
        write_submission,
    )
    from mrivol.io import write_csv_atomic

    ensemble = cv_ensemble(run, tracking_uri=tracking_uri)
    if ensemble.bundle != bundle:
        raise ValueError(
            f"CV parent {ensemble.parent_run_name} is of bundle {ensemble.bundle!r}, not {bundle!r}"
        )
    labels = label_convention(bundle, ensemble.overrides.get("et_label"))
    pp = ensemble.postprocessing
    print(
        f"ensemble of {len(ensemble.models)} fold models of {ensemble.parent_run_name} "
        f"(folds {', '.join(map(str, ensemble.models))}); post-processing: "
        + (pp.describe() if pp is not None else "none tuned"),
        flush=True,
    )
    written = ensemble_predict(
        ensemble,
        input_datalist(input),
        out,
        regions=[str(r) for r in common_setting(bundle, "regions", ["tc", "wt", "et"])],
        labels=labels,
        tta=tta,
        mc_samples=mc_samples,
        mc_batch_size=mc_batch_size,
        overrides=overrides,
    )
    rows = volume_report(out, labels=labels)
    if rows:
        write_csv_atomic(rows, Path(out) / "volumes.csv")
    if submission:
        write_submission(out, labels=labels)
    return written

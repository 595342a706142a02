"""Evaluate a trained run on its validation fold, and segment new scans with it.

A run is named by its MLflow run id (its params say which network, profile, fold and manifest
it used, and its ``model.pt`` artifact holds the best weights) or by a checkpoint path (then
network, profile and fold come from the arguments).

``infer`` runs the bundle's ``inference.yaml`` (sliding window, optional MC dropout, ``Invertd``
back to each input's grid); ``evaluate`` runs the bundle's evaluator, then segments the fold's
validation cases the same way and scores them with :mod:`mrivol.engine.seg_evaluation`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mrivol.engine.paths import bundle_dir, runs_dir
from mrivol.engine.runner import build_workflow, default_network, detect_profile
from mrivol.engine.tracking import default_tracking_uri
from mrivol.io import write_csv_atomic

__all__ = [
    "RunRef",
    "add_infer_arguments",
    "evaluate",
    "infer",
    "input_datalist",
    "main_infer",
    "resolve_run",
    "volume_report",
]

MODALITIES = ("t1", "t1ce", "t2", "flair")


@dataclass
class RunRef:
    """A trained model: its checkpoint and the settings it was trained with."""

    checkpoint: Path
    net: str
    profile: str
    fold: int
    manifest: str | None
    run_id: str | None
    tracking_uri: str


def resolve_run(
    run: str,
    *,
    net: str = "unet",
    profile: str | None = None,
    fold: int = 0,
    tracking_uri: str | None = None,
) -> RunRef:
    """Find the checkpoint and settings of ``run`` (an MLflow run id or a checkpoint file).

    Raises:
        FileNotFoundError: ``run`` is neither an existing file nor a run id in the store.
    """
    tracking_uri = tracking_uri or default_tracking_uri()
    path = Path(run)
    if path.is_file():
        return RunRef(path, net, profile or detect_profile(), fold, None, None, tracking_uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        info = client.get_run(run)
    except MlflowException as err:
        raise FileNotFoundError(
            f"{run!r} is neither a checkpoint file nor an MLflow run id in {tracking_uri}"
        ) from err
    params = info.data.params
    local = runs_dir() / info.info.run_name / "checkpoints" / "model.pt"
    if local.is_file():
        checkpoint = local
    else:
        checkpoint = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run, artifact_path="model.pt", tracking_uri=tracking_uri
            )
        )
    return RunRef(
        checkpoint=checkpoint,
        net=params.get("network", net),
        profile=params.get("profile", profile or detect_profile()),
        fold=int(params.get("fold", fold)),
        manifest=params.get("manifest"),
        run_id=run,
        tracking_uri=tracking_uri,
    )


def input_datalist(input: str | Path, *, fold: int = 0, split: str = "all") -> list[dict]:
    """The scans to segment: a manifest CSV, or a folder of ``<case>_{t1,t1ce,t2,flair}.nii.gz``.

    A folder may be flat or in BraTS layout (``<case>/<case>_t1.nii.gz``). Labels are dropped:
    inference needs the images only.

    Raises:
        FileNotFoundError: ``input`` does not exist, or a folder holds no complete case (the
            message lists the cases with missing modalities).
    """
    from mrivol.data import to_datalist

    path = Path(input)
    if path.is_file():
        items = to_datalist(path, fold=fold, split=split)
        return [{k: v for k, v in item.items() if k != "label"} for item in items]
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path}: neither a manifest CSV nor a folder")
    t1s = sorted(path.glob("*_t1.nii.gz")) + sorted(path.glob("*/*_t1.nii.gz"))
    items, incomplete = [], []
    for t1 in t1s:
        case = t1.name[: -len("_t1.nii.gz")]
        files = [t1.parent / f"{case}_{m}.nii.gz" for m in MODALITIES]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            incomplete.append(f"case {case} in {t1.parent}: missing {', '.join(missing)}")
            continue
        items.append({"image": [str(f) for f in files], "case_id": case})
    if incomplete or not items:
        raise FileNotFoundError(
            f"--input {path}: "
            + ("; ".join(incomplete) if incomplete else "no <case>_t1.nii.gz found")
            + ". Each case needs <case>_{t1,t1ce,t2,flair}.nii.gz (flat or in <case>/)."
        )
    return items


def volume_report(pred_dir: str | Path, *, labels: str = "brats2021") -> list[dict[str, Any]]:
    """Tumour volumes (ml) per case from ``<case>_seg.nii.gz``, with mean uncertainty if present.

    Returns:
        One row per case: ``case``, ``{et,tc,wt}_ml``, and ``{entropy,mi}_wt_mean`` (nats,
        mean inside the predicted whole tumour) when those maps exist.
    """
    from mrivol.metrics import brats_region_masks

    rows = []
    for seg in sorted(Path(pred_dir).glob("*_seg.nii.gz")):
        case = seg.name[: -len("_seg.nii.gz")]
        img = nib.load(seg)
        voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
        masks = brats_region_masks(np.asanyarray(img.dataobj), labels=labels, name=str(seg))
        row: dict[str, Any] = {"case": case}
        row.update({f"{r.lower()}_ml": float(m.sum()) * voxel_ml for r, m in masks.items()})
        for kind in ("entropy", "mi"):
            path = seg.parent / f"{case}_{kind}_wt.nii.gz"
            if path.is_file():
                values = np.asanyarray(nib.load(path).dataobj)[masks["WT"]]
                row[f"{kind}_wt_mean"] = float(values.mean()) if values.size else 0.0
        rows.append(row)
    return rows


def _run_inference(ref: RunRef, bundle: str, datalist: list[dict], out: Path, **settings) -> None:
    base = {
        "bundle_root": str(bundle_dir(bundle)),
        "output_dir": str(out),
        "pred_dir": str(out),
        "checkpoint": str(ref.checkpoint),
        "infer#datalist": datalist,
    }
    logging.getLogger("ignite").setLevel(logging.WARNING)
    workflow = build_workflow(
        bundle, "inference", profile=ref.profile, net=ref.net, settings={**base, **settings}
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()


def infer(
    *,
    bundle: str,
    run: str,
    input: str | Path,
    out: str | Path,
    mc_samples: int = 1,
    mc_batch_size: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> list[Path]:
    """Segment every case of ``input`` (manifest or folder, see :func:`input_datalist`).

    Writes to ``out``, all on each input's own grid: ``<case>_seg.nii.gz`` (BraTS labels),
    ``<case>_prob_{tc,wt,et}.nii.gz`` and, for ``mc_samples > 1``,
    ``<case>_entropy_{tc,wt,et}.nii.gz`` (predictive entropy) and ``<case>_mi_{tc,wt,et}.nii.gz``
    (mutual information), in nats; plus ``volumes.csv`` (:func:`volume_report`).

    Args:
        bundle: bundle name (``brats_seg``).
        run: MLflow run id or checkpoint file.
        input: manifest CSV or folder of scans.
        out: output folder.
        mc_samples: MC-dropout samples T (1: deterministic).
        mc_batch_size: stochastic rows per forward call (``None``: all T at once).
        overrides: further config overrides (e.g. the ``spacing`` / ``roi_size`` trained with).
        **kwargs: passed to :func:`resolve_run` (``net``, ``profile``, ``fold``, ``tracking_uri``).

    Returns:
        The written label maps.
    """
    ref = resolve_run(run, **kwargs)
    out = Path(out)
    _run_inference(
        ref,
        bundle,
        input_datalist(input),
        out,
        mc_samples=int(mc_samples),
        mc_batch_size=mc_batch_size,
        **dict(overrides or {}),
    )
    rows = volume_report(out, labels=_labels(bundle, ref))
    if rows:
        write_csv_atomic(rows, out / "volumes.csv")
    return sorted(out.glob("*_seg.nii.gz"))


def _labels(bundle: str, ref: RunRef) -> str:
    """The label convention of a bundle's ``et_label`` (4: brats2021, 3: brats2023)."""
    from monai.bundle import ConfigParser

    config = ConfigParser.load_config_file(bundle_dir(bundle) / "configs" / "common.yaml")
    return "brats2023" if int(config.get("et_label", 4)) == 3 else "brats2021"


def evaluate(
    *,
    bundle: str,
    run: str,
    data: str | None = None,
    out: str | Path | None = None,
    mc_samples: int = 10,
    overrides: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Evaluate ``run`` on its fold's validation cases; log metrics and reports to the same run.

    Two steps: the bundle's evaluator (``evaluate.yaml``: ``val_per_case.csv``, mean Dice and
    HD95 in the preprocessed space), then inference of the validation cases with
    ``mc_samples`` MC-dropout samples back on each case's own grid, scored against the
    original labels by :func:`mrivol.engine.seg_evaluation.evaluate_segmentations`:
    ``seg_metrics.csv`` (per case and region, QU-BraTS when T > 1), ``seg_metrics_summary.csv``,
    ``seg_metrics_boxplot.png``, ``overlay_{best,median,worst}.png``, ``uncertainty.png``.
    Metrics are logged as ``eval_*`` (evaluator) and ``eval_<metric>_<region>`` (means).

    Args:
        bundle: bundle name (``brats_seg``).
        run: MLflow run id or checkpoint file.
        data: manifest (default: the run's own).
        out: report folder (default ``<runs>/eval-<run>``).
        mc_samples: MC-dropout samples T of the uncertainty maps (1: none).
        overrides: further config overrides (e.g. the ``spacing`` / ``roi_size`` trained with).
        **kwargs: passed to :func:`resolve_run`.

    Returns:
        The evaluator's metrics plus the per-region means (``dice_et``, ``hd95_mm_wt``, ...).
    """
    from mrivol.data import to_datalist
    from mrivol.engine.seg_evaluation import evaluate_segmentations
    from mrivol.engine.seg_report_plots import save_case_figures

    ref = resolve_run(run, **kwargs)
    manifest = data or ref.manifest
    if manifest is None:
        raise ValueError(
            "evaluating a checkpoint file needs DATA=<manifest.csv> (the run's manifest is unknown)"
        )
    out_dir = Path(out) if out else runs_dir() / f"eval-{ref.run_id or ref.checkpoint.stem}"
    settings = {
        "bundle_root": str(bundle_dir(bundle)),
        "output_dir": str(out_dir),
        "eval_dir": str(out_dir),
        "manifest": str(Path(manifest).resolve()),
        "fold": ref.fold,
        "checkpoint": str(ref.checkpoint),
        **dict(overrides or {}),
    }
    logging.getLogger("ignite").setLevel(logging.WARNING)
    workflow = build_workflow(
        bundle, "evaluate", profile=ref.profile, net=ref.net, settings=settings
    )
    workflow.initialize()
    workflow.run()
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    metrics = {
        k: float(v) for k, v in evaluator.state.metrics.items() if isinstance(v, (int, float))
    }
    workflow.finalize()

    items = {d["case_id"]: d for d in to_datalist(manifest, fold=ref.fold, split="val")}
    pred_dir = out_dir / "predictions"
    datalist = [{k: v for k, v in d.items() if k != "label"} for d in items.values()]
    _run_inference(
        ref, bundle, datalist, pred_dir, mc_samples=int(mc_samples), **dict(overrides or {})
    )
    labels = _labels(bundle, ref)
    result = evaluate_segmentations(
        pred_dir,
        {c: d["label"] for c, d in items.items()},
        out=out_dir / "seg_metrics.csv",
        labels=labels,
    )
    if result.failed:
        raise ValueError(
            f"evaluation of {len(result.failed)} case(s) failed: {sorted(result.failed.values())}"
        )
    for row in result.summary:
        for name in ("dice", "hd95_mm", "sensitivity", "specificity", "qu_score"):
            if f"{name}_mean" in row:
                metrics[f"{name}_{row['region'].lower()}"] = row[f"{name}_mean"]
    figures = save_case_figures(result.rows, items, pred_dir, out_dir, labels=labels)
    if ref.run_id is not None:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=ref.tracking_uri)
        for name, value in metrics.items():
            if np.isfinite(value):
                client.log_metric(ref.run_id, f"eval_{name.removeprefix('val_')}", value)
        artifacts = sorted(out_dir.glob("*.csv")) + sorted(out_dir.glob("*.png"))
        for artifact in sorted(set(artifacts) | set(figures)):
            client.log_artifact(ref.run_id, str(artifact), artifact_path="evaluation")
    return metrics


def add_infer_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``mrivol infer`` options (besides ``--bundle/--net/--fold``) to ``parser``."""
    parser.add_argument(
        "--run", "--checkpoint", dest="run", required=True, help="MLflow run id or checkpoint file"
    )
    parser.add_argument(
        "--input",
        required=True,
        help="manifest CSV, or a folder of <case>_{t1,t1ce,t2,flair}.nii.gz",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--mc-samples",
        type=int,
        default=1,
        help="MC-dropout samples T; T > 1 also writes entropy and MI maps",
    )
    parser.add_argument(
        "--mc-batch-size",
        type=int,
        default=None,
        help="stochastic rows per forward call (default: all T at once)",
    )
    return parser


def main_infer(args: argparse.Namespace) -> int:
    """Run ``mrivol infer``; prints where the outputs went."""
    written = infer(
        bundle=args.bundle,
        run=args.run,
        input=args.input,
        out=args.out,
        mc_samples=args.mc_samples,
        mc_batch_size=args.mc_batch_size,
        net=args.net or default_network(args.bundle),
        fold=args.fold,
    )
    print(f"{len(written)} case(s) segmented in {args.out} (volumes.csv has the volumes)")
    return 0

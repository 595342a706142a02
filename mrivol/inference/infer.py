"""``mrivol infer``: segment new scans with a trained run, on each input's own grid.

Runs the bundle's ``inference.yaml`` (sliding window, optional MC dropout, ``Invertd`` back to
each input's grid) with the weights of a run (:func:`mrivol.tracking.resolve_run`).

At scale: ``--shard i/n`` segments one of ``n`` disjoint parts of the input (``n`` processes
with the same ``--out`` write every case once), a re-run skips the cases already complete in
``--out`` (every file is written atomically, the label map last), and the maps are written by
a background thread while the next case is segmented (:mod:`mrivol.inference.shard`,
:mod:`mrivol.inference.save_case_outputs`, :mod:`mrivol.inference.background_writer`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mrivol.data import BRATS2023_MODALITIES, BRATS_MODALITIES
from mrivol.inference.run_ref import RunRef, model_workflow, resolve_run
from mrivol.inference.save_case_outputs import PROB_DTYPES, label_map_path
from mrivol.inference.shard import (
    Shard,
    item_case,
    remove_temporaries,
    shard_argument,
    unfinished_cases,
)
from mrivol.io import atomic_path, exclusive_lock, write_csv_atomic
from mrivol.paths import bundle_dir
from mrivol.tracking.runs import default_tracking_uri
from mrivol.training.workflow import build_workflow, default_network

__all__ = [
    "add_infer_arguments",
    "common_setting",
    "infer",
    "input_datalist",
    "label_convention",
    "main_infer",
    "run_inference",
    "volume_report",
    "write_submission",
]

SUBMISSION_DIR = "submission"
REPORT_LOCK = ".report.lock"  # serialises the shards' rewrites of volumes.csv / submission/


def input_datalist(input: str | Path, *, fold: int = 0, split: str = "all") -> list[dict]:
    """The scans to segment: a manifest CSV, or a folder of ``<case>_{t1,t1ce,t2,flair}.nii.gz``
    (BraTS 2023+: ``<case>-{t1n,t1c,t2w,t2f}.nii.gz``, stacked in that order).

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
    items, incomplete = [], []
    for sep, modalities in (("_", BRATS_MODALITIES), ("-", BRATS2023_MODALITIES)):
        first = f"{sep}{modalities[0]}.nii.gz"
        for t1 in sorted(path.glob(f"*{first}")) + sorted(path.glob(f"*/*{first}")):
            case = t1.name[: -len(first)]
            files = [t1.parent / f"{case}{sep}{m}.nii.gz" for m in modalities]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                incomplete.append(f"case {case} in {t1.parent}: missing {', '.join(missing)}")
                continue
            items.append({"image": [str(f) for f in files], "case_id": case})
    if incomplete or not items:
        raise FileNotFoundError(
            f"--input {path}: "
            + ("; ".join(incomplete) if incomplete else "no <case>_t1.nii.gz found")
            + ". Each case needs <case>_{t1,t1ce,t2,flair}.nii.gz or (BraTS 2023+) "
            "<case>-{t1n,t1c,t2w,t2f}.nii.gz, flat or in <case>/."
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


def write_submission(pred_dir: str | Path, *, labels: str = "brats2021") -> list[Path]:
    """Copy each ``<case>_seg.nii.gz`` to ``submission/<case>.nii.gz`` in BraTS 2023+ labels.

    The BraTS 2023-2025 challenges take one ``<case id>.nii.gz`` per case, uint8 with labels
    1 NCR, 2 ED, 3 ET, on the case's own grid (the synapse submission instructions); a map in
    the 2021 convention (ET = 4) is relabelled. Written atomically, next to the other outputs.

    Returns:
        The written files, sorted.
    """
    from mrivol.metrics import BRATS_CONVENTIONS

    (et,) = BRATS_CONVENTIONS[labels]["ET"]
    out = Path(pred_dir) / SUBMISSION_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for seg in sorted(Path(pred_dir).glob("*_seg.nii.gz")):
        img = nib.load(seg)
        data = np.asanyarray(img.dataobj).astype(np.uint8)
        data[data == et] = 3
        target = out / f"{seg.name[: -len('_seg.nii.gz')]}.nii.gz"
        with atomic_path(target, suffix=".nii.gz") as tmp:
            nib.save(nib.Nifti1Image(data, img.affine, img.header), tmp)
        written.append(target)
    return written


def run_inference(ref: RunRef, bundle: str, datalist: list[dict], out: Path, **settings) -> None:
    """Run the bundle's ``inference.yaml`` with ``ref``'s weights on ``datalist``, into ``out``."""
    base = {
        "bundle_root": str(bundle_dir(bundle)),
        "output_dir": str(out),
        "pred_dir": str(out),
        "checkpoint": str(ref.checkpoint),
        "infer#datalist": datalist,
    }
    logging.getLogger("ignite").setLevel(logging.WARNING)
    settings = {**ref.overrides, **base, **settings}  # as trained, unless the caller says
    if ref.config_files:  # a packaged model: its own configs and network (run_ref)
        workflow = model_workflow(ref, settings)
    else:
        workflow = build_workflow(
            bundle, "inference", profile=ref.profile, net=ref.net, settings=settings
        )
    if settings.get("prob_dtype", "float32") != "float32" and not workflow.parser.get(
        "infer#writer"
    ):
        raise ValueError(
            f"prob_dtype {settings['prob_dtype']!r}: the inference config of {ref.checkpoint} "
            "predates it (packaged before --prob-dtype existed); use --prob-dtype float32, or "
            "--run with the training run id"
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
    submission: bool = False,
    overrides: Mapping[str, Any] | None = None,
    tta: bool = False,
    shard: Shard | str | None = None,
    prob_dtype: str = "float32",
    **kwargs: Any,
) -> list[Path]:
    """Segment every case of ``input`` (manifest or folder, see :func:`input_datalist`).

    Writes to ``out``, all on each input's own grid: ``<case>_seg.nii.gz`` (BraTS labels),
    ``<case>_prob_{tc,wt,et}.nii.gz`` and, for ``mc_samples > 1``,
    ``<case>_entropy_{tc,wt,et}.nii.gz`` (predictive entropy) and ``<case>_mi_{tc,wt,et}.nii.gz``
    (mutual information), in nats; plus ``volumes.csv`` (:func:`volume_report`) and, with
    ``submission``, ``submission/<case>.nii.gz`` (:func:`write_submission`).

    Every file is written atomically (temporary name, then rename), the label map of a case
    last. Cases whose files are all in ``out`` are skipped ("skipping N finished cases"), so a
    killed run continues where it stopped. With ``shard`` ``i/n`` only the cases at positions
    ``i, i + n, ...`` of the sorted case ids are segmented (:class:`~mrivol.inference.shard.Shard`):
    ``n`` processes with the same ``out`` write every case once. ``volumes.csv`` and
    ``submission/`` describe every case present in ``out``: each process rewrites them at its
    end from all the label maps there, one process at a time (a lock file), so the last shard
    to finish leaves the complete report.

    Args:
        bundle: bundle name (``brats_seg``).
        run: MLflow run id, model URI (``models:/NAME@champion``) or checkpoint file.
        input: manifest CSV or folder of scans.
        out: output folder.
        mc_samples: MC-dropout samples T (1: deterministic).
        mc_batch_size: stochastic rows per forward call (``None``: all T at once).
        submission: also write the BraTS 2023+ submission files.
        overrides: further config overrides (e.g. the ``spacing`` / ``roi_size`` trained with).
        tta: mirror every sliding window along the three axes (:mod:`mrivol.inference.tta`).
        shard: this process's part ``i/n`` of the cases (``None``: all of them).
        prob_dtype: ``float32``, or ``uint16`` for the probability and uncertainty maps
            (NIfTI scale 1/65535, error < 1e-5, half the size; NIfTI has no float16).
        **kwargs: passed to :func:`resolve_run` (``net``, ``profile``, ``fold``, ``tracking_uri``).

    A ``mrivol cv`` parent run as ``run`` segments with the ensemble of its fold models
    (:func:`mrivol.inference.ensemble.infer_ensemble`, MC samples spread over the folds).

    Returns:
        The label maps of this process's cases (all of ``input``, or the shard's), sorted.

    Raises:
        ValueError: ``prob_dtype`` unknown; ``shard`` or ``prob_dtype`` with a CV parent run
            (not supported for fold ensembles yet); duplicate case ids in ``input``.
    """
    from mrivol.inference.ensemble import infer_ensemble, is_cv_parent_run, tta_settings

    if prob_dtype not in PROB_DTYPES:
        raise ValueError(f"prob_dtype must be one of {PROB_DTYPES}, got {prob_dtype!r}")
    shard = Shard.parse(shard) if isinstance(shard, str) else (shard or Shard())
    uri = kwargs.get("tracking_uri") or default_tracking_uri()
    if is_cv_parent_run(run, tracking_uri=uri):
        if shard.count > 1 or prob_dtype != "float32":
            raise ValueError(
                f"run {run} is a cross-validation parent: --shard and --prob-dtype are not "
                "supported for fold ensembles yet; run it without them"
            )
        return infer_ensemble(
            bundle=bundle,
            run=run,
            input=input,
            out=out,
            tracking_uri=uri,
            tta=tta,
            mc_samples=mc_samples,
            mc_batch_size=mc_batch_size,
            submission=submission,
            overrides=overrides,
        )
    overrides = {**dict(overrides or {}), **(tta_settings() if tta else {})}
    ref = resolve_run(run, **kwargs)
    out = Path(out)
    regions = [str(r) for r in common_setting(bundle, "regions", ["tc", "wt", "et"])]
    items = shard.select(input_datalist(input))
    todo, finished = unfinished_cases(items, out, regions=regions, uncertainty=mc_samples > 1)
    if shard.count > 1:
        print(f"shard {shard}: {len(items)} case(s) of this shard", flush=True)
    if finished:
        print(f"skipping {len(finished)} finished cases (all outputs in {out})", flush=True)
    if todo:
        remove_temporaries(out, [item_case(i) for i in todo], regions=regions)
        run_inference(
            ref,
            bundle,
            [dict(i) for i in todo],
            out,
            mc_samples=int(mc_samples),
            mc_batch_size=mc_batch_size,
            prob_dtype=prob_dtype,
            **overrides,
        )
    labels = label_convention(bundle)
    with exclusive_lock(out / REPORT_LOCK):  # the last shard to get here sees every case
        rows = volume_report(out, labels=labels)
        if rows:
            write_csv_atomic(rows, out / "volumes.csv")
        if submission:
            write_submission(out, labels=labels)
    return sorted(label_map_path(out, item_case(i)) for i in items)


def common_setting(bundle: str, key: str, default: Any = None) -> Any:
    """A plain value of a bundle's ``common.yaml`` (``default`` when the key is absent)."""
    from monai.bundle import ConfigParser

    config = ConfigParser.load_config_file(bundle_dir(bundle) / "configs" / "common.yaml")
    return config.get(key, default)


def label_convention(bundle: str, et_label: int | None = None) -> str:
    """The label convention of ``et_label`` (default: the bundle's): 4 brats2021, 3 brats2023."""
    et = common_setting(bundle, "et_label", 4) if et_label is None else et_label
    return "brats2023" if int(et) == 3 else "brats2021"


def add_infer_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``mrivol infer`` options (besides ``--bundle/--net/--fold``) to ``parser``."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--run",
        "--checkpoint",
        dest="run",
        help="MLflow run id (a training run, or a `mrivol cv` parent: its fold ensemble) or "
        "checkpoint file",
    )
    which.add_argument(
        "--model",
        dest="run",
        metavar="URI",
        help="registered MLflow model: models:/NAME@champion, models:/NAME/<version> or "
        "runs:/RUN/model (its own inference configuration travels with it)",
    )
    parser.add_argument(
        "--input",
        required=True,
        help="manifest CSV, or a folder of <case>_{t1,t1ce,t2,flair}.nii.gz "
        "(classification bundles: of T1 scans, *.nii.gz)",
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
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: mirror every window along the three axes (8 passes)",
    )
    parser.add_argument(
        "--submission",
        action="store_true",
        help="also write submission/<case>.nii.gz (BraTS 2023+ labels 1 NCR, 2 ED, 3 ET)",
    )
    parser.add_argument(
        "--shard",
        type=shard_argument,
        default=None,
        metavar="I/N",
        help="segment only part I of N (0 <= I < N) of the cases; N processes with the same "
        "--out write every case once. Finished cases in --out are always skipped",
    )
    parser.add_argument(
        "--prob-dtype",
        choices=PROB_DTYPES,
        default="float32",
        help="probability / uncertainty maps: float32, or uint16 with scale 1/65535 (half "
        "the size; NIfTI has no float16)",
    )
    return parser


def main_infer(args: argparse.Namespace) -> int:
    """Run ``mrivol infer``; prints where the outputs went.

    A bundle whose ``inference.yaml`` says ``task: classification`` (ad_cls) classifies the
    scans instead (:func:`mrivol.inference.classify.main_classify`).
    """
    from mrivol.inference.classify import CLASSIFICATION_TASK, bundle_task, main_classify

    if bundle_task(args.bundle) == CLASSIFICATION_TASK:
        return main_classify(args)
    written = infer(
        bundle=args.bundle,
        run=args.run,
        input=args.input,
        out=args.out,
        mc_samples=args.mc_samples,
        mc_batch_size=args.mc_batch_size,
        submission=args.submission,
        tta=args.tta,
        shard=args.shard,
        prob_dtype=args.prob_dtype,
        net=args.net or default_network(args.bundle),
        fold=args.fold,
    )
    part = f" (shard {args.shard})" if args.shard else ""
    print(f"{len(written)} case(s){part} complete in {args.out} (volumes.csv has the volumes)")
    if args.submission:
        print(f"submission files (labels 1/2/3) in {Path(args.out) / SUBMISSION_DIR}")
    return 0

"""Out-of-fold (OOF) predictions: each fold's best model on its own validation cases.

* Segmentation with an ``inference.yaml`` (brats_seg): the bundle's inference on each case's
  original grid (:func:`mrivol.inference.run_inference`), into the parent's ``oof/`` folder:
  ``<case>_seg.nii.gz`` and the region probabilities ``<case>_prob_<region>.nii.gz`` stored
  compactly (uint8 with the NIfTI scale 1/255; readers get floats back).
* Everything else (ad_cls, brats_multitask): the bundle's validation evaluator with the best
  weights; per case the class probabilities and, for a segmentation head, Dice / HD95 per region
  on the network's grid (those bundles have no inference workflow that maps back).

Each finished fold leaves ``oof/fold<k>.json`` (its run, its cases and per-case rows), so a
re-run pools the folds without predicting them again.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mrivol.io import atomic_path, write_text_atomic
from mrivol.paths import bundle_dir, runs_dir

__all__ = [
    "OutputCollector",
    "bundle_tasks",
    "compact_probabilities",
    "fold_record",
    "predict_oof_outputs",
    "predict_oof_segmentation",
    "write_fold_record",
]

PROB_SCALE = 1.0 / 255.0


def bundle_tasks(bundle: str) -> dict[str, Any]:
    """What a bundle predicts, from its ``common.yaml``: ``regions``, ``class_names``, and
    ``original_grid`` (it has an ``inference.yaml`` that maps predictions back)."""
    from monai.bundle import ConfigParser

    configs = bundle_dir(bundle) / "configs"
    common = ConfigParser.load_config_file(configs / "common.yaml")
    return {
        "regions": [str(r) for r in common.get("regions", [])],
        "class_names": [str(c) for c in common.get("class_names", [])],
        "original_grid": (configs / "inference.yaml").is_file() and "regions" in common,
    }


def compact_probabilities(pred_dir: Path, case: str, regions: Sequence[str]) -> None:
    """Rewrite ``<case>_prob_<region>.nii.gz`` as uint8 (scale 1/255): a quarter of float32.

    Rounding keeps ``p > 0.5`` exactly (128/255 > 0.5 > 127/255).
    """
    for region in regions:
        path = pred_dir / f"{case}_prob_{region.lower()}.nii.gz"
        img = nib.load(path)
        prob = np.asarray(img.dataobj, dtype=np.float32)
        q = np.clip(np.rint(prob / PROB_SCALE), 0, 255).astype(np.uint8)
        out = nib.Nifti1Image(q, img.affine, img.header)
        out.set_data_dtype(np.uint8)
        out.header.set_slope_inter(PROB_SCALE, 0.0)
        with atomic_path(path, suffix=".nii.gz") as tmp:
            nib.save(out, tmp)


def fold_record(oof_dir: Path, fold: int) -> dict[str, Any] | None:
    """The record of a fold whose OOF predictions are complete, or ``None``."""
    path = oof_dir / f"fold{fold}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def write_fold_record(oof_dir: Path, fold: int, record: Mapping[str, Any]) -> Path:
    """Write ``oof/fold<k>.json`` atomically (the fold's OOF predictions are complete)."""
    return write_text_atomic(json.dumps(dict(record), default=float), oof_dir / f"fold{fold}.json")


def predict_oof_segmentation(
    *,
    bundle: str,
    run_id: str,
    tracking_uri: str,
    manifest: Path,
    fold: int,
    oof_dir: Path,
    regions: Sequence[str],
    overrides: Mapping[str, Any],
) -> list[str]:
    """Segment fold ``fold``'s validation cases with its run's best weights into ``oof_dir``.

    Returns:
        The case ids predicted.

    Raises:
        FileNotFoundError: a case's prediction was not written (the message names it).
    """
    from mrivol.inference import input_datalist, resolve_run, run_inference
    from mrivol.tracking.models import inference_overrides

    ref = resolve_run(run_id, tracking_uri=tracking_uri)
    items = input_datalist(manifest, fold=fold, split="val")
    run_inference(ref, bundle, items, oof_dir, mc_samples=1, **inference_overrides(overrides))
    cases = [str(item["case_id"]) for item in items]
    for case in cases:
        if not (oof_dir / f"{case}_seg.nii.gz").is_file():
            raise FileNotFoundError(f"fold {fold}: {case}_seg.nii.gz was not written to {oof_dir}")
        compact_probabilities(oof_dir, case, regions)
    return cases


class OutputCollector:
    """Collect per-case outputs of a batched (``decollate=False``) validation evaluator.

    The network output is class logits (B, K), or ``(seg logits (B, R, ...), class logits)``
    for a multi-task network (labels alike). Rows: ``case``, ``label``, ``prob_<class>`` and,
    with a segmentation head, one row per region with Dice and HD95 (mm, on the evaluator's
    grid of ``spacing``).

    Args:
        class_names: class names in index order (empty: no classification head).
        regions: segmentation region names in channel order (empty: no segmentation head).
        spacing: voxel spacing of the evaluator's grid (mm).
    """

    def __init__(
        self, *, class_names: Sequence[str], regions: Sequence[str], spacing: Sequence[float]
    ) -> None:
        self.class_names = list(class_names)
        self.regions = list(regions)
        self.spacing = tuple(float(s) for s in spacing)
        self.classes: list[dict[str, Any]] = []
        self.segmentation: list[dict[str, Any]] = []

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        import torch

        from mrivol.metrics import binary_segmentation_metrics

        out, batch = engine.state.output, engine.state.batch
        pred, label = out["pred"], out["label"]
        seg = None
        if isinstance(pred, (tuple, list)):
            (seg, pred), (seg_true, label) = pred, label
        cases = [str(c) for c in batch["case_id"]]
        if self.class_names:
            probs = torch.softmax(pred.detach().float(), dim=1).cpu().numpy()
            labels = torch.as_tensor(label).reshape(-1).tolist()
            for case, p, y in zip(cases, probs, labels, strict=True):
                row = {"case": case, "label": int(y), "predicted": int(np.argmax(p))}
                names = self.class_names
                row.update({f"prob_{c}": float(v) for c, v in zip(names, p, strict=True)})
                self.classes.append(row)
        if seg is not None and self.regions:
            masks = (torch.sigmoid(seg.detach().float()) > 0.5).cpu().numpy()
            truth = torch.as_tensor(seg_true).cpu().numpy() > 0.5
            for i, case in enumerate(cases):
                for r, region in enumerate(self.regions):
                    m = binary_segmentation_metrics(masks[i, r], truth[i, r], spacing=self.spacing)
                    row = {"case": case, "region": region.upper(), "dice": m["dice"]}
                    self.segmentation.append({**row, "hd95_mm": m["hd95_mm"]})


def predict_oof_outputs(
    *,
    bundle: str,
    net: str,
    profile: str,
    run_id: str,
    tracking_uri: str,
    manifest: Path,
    fold: int,
    overrides: Mapping[str, Any],
) -> OutputCollector:
    """Run the bundle's validation evaluator of ``fold`` with its run's best weights.

    Returns:
        The :class:`OutputCollector` with one entry per validation case.
    """
    from mrivol.inference import resolve_run
    from mrivol.training.workflow import build_workflow

    ref = resolve_run(run_id, tracking_uri=tracking_uri)
    tasks = bundle_tasks(bundle)
    work = runs_dir() / f"oof-{ref.run_id}"
    loader = {"_target_": "CheckpointLoader", "load_path": str(ref.checkpoint)}
    loader.update(load_dict={"model": "@network"}, map_location="@device")
    settings = {
        "bundle_root": str(bundle_dir(bundle)),
        "output_dir": str(work),
        "manifest": str(Path(manifest).resolve()),
        "fold": fold,
        "net_name": net,
        "profile": profile,
        **{k: v for k, v in overrides.items() if k != "max_epochs"},
        "validate#handlers": [loader],
        "validate#report_handlers": [],
        "validate#rank0_handlers": [],
    }
    logging.getLogger("ignite").setLevel(logging.WARNING)
    workflow = build_workflow(bundle, "train", profile=profile, net=net, settings=settings)
    workflow.initialize()
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    collector = OutputCollector(
        class_names=tasks["class_names"],
        regions=tasks["regions"],
        spacing=workflow.parser.get_parsed_content("spacing"),
    )
    collector.attach(evaluator)
    evaluator.run()
    workflow.finalize()
    shutil.rmtree(work, ignore_errors=True)  # only the created checkpoints/ folder is in it
    return collector

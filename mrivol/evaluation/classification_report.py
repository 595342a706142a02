"""Validation report of a classification bundle: per-class metrics each epoch, Grad-CAM++.

The segmentation :class:`mrivol.training.handlers.ValidationReport` reads masks; a classifier's
evaluator yields logits (B, K) and class indices (B,). This handler collects them over the
validation epoch, computes :func:`mrivol.metrics.classification_report` and puts
``val_accuracy``, ``val_macro_f1``, ``val_macro_roc_auc`` and ``val_recall_<class>`` into
``engine.state.metrics`` (so MONAI's ``MLFlowHandler`` logs them with the epoch). When the
key metric improves it writes the report files (CSV, confusion PNG), a per-case CSV and
Grad-CAM++ maps of a few validation cases (one per class where possible) as NIfTI and PNG,
computed with MONAI's :class:`monai.visualize.GradCAMpp` (Chattopadhay et al., "Grad-CAM++:
Improved Visual Explanations for Deep Convolutional Networks", WACV 2018).

Examples:
    >>> report = ClassificationReportHandler(output_dir="runs/x", class_names=["CN", "MCI", "AD"],
    ...                                      network=net, target_layer="features")  # doctest: +SKIP
    >>> report.attach(evaluator)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mrivol.evaluation.gradcam import gradcam_pp, save_gradcam_png
from mrivol.io import atomic_path, write_csv_atomic
from mrivol.metrics.classification import classification_report, write_classification_report

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["ClassificationReportHandler"]


class ClassificationReportHandler:
    """Per-epoch classification metrics and, at each best epoch, report files and Grad-CAM++.

    Attach to a ``SupervisedEvaluator`` built with ``decollate=False`` (its output then holds
    the batch: ``pred`` logits (B, K), ``label`` (B,)). Writes, in ``output_dir``:
    ``classification_*.csv``, ``confusion_matrix.png``, ``val_per_case.csv`` and
    ``gradcam/<case>.{png,nii.gz}`` (Grad-CAM++ of the predicted class).

    Args:
        output_dir: run directory.
        class_names: class names in index order.
        network: the classifier (for Grad-CAM++; ``None`` skips the maps).
        target_layer: module name Grad-CAM++ explains.
        gradcam_cases: number of validation cases explained at each best epoch.
        key_metric: metric deciding "best" (higher is better), e.g. ``val_balanced_accuracy``.
    """

    def __init__(
        self,
        *,
        output_dir: str | Path,
        class_names: Sequence[str],
        network: torch.nn.Module | None = None,
        target_layer: str = "features",
        gradcam_cases: int = 3,
        key_metric: str = "val_balanced_accuracy",
    ) -> None:
        self.output_dir = Path(output_dir)
        self.class_names = [str(c) for c in class_names]
        self.network = network
        self.target_layer = target_layer
        self.gradcam_cases = int(gradcam_cases)
        self.key_metric = key_metric
        self.best = -float("inf")
        self._reset()

    def _reset(self) -> None:
        self.probs: list[np.ndarray] = []
        self.labels: list[int] = []
        self.cases: list[str] = []
        self.samples: dict[str, tuple[torch.Tensor, int]] = {}

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, lambda _: self._reset())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._complete)

    def _iteration(self, engine: Engine) -> None:
        out = engine.state.output
        logits = out["pred"].detach().float()
        labels = torch.as_tensor(out["label"]).reshape(-1).tolist()
        batch = engine.state.batch
        cases = batch.get("case_id", [f"case{len(self.labels) + i}" for i in range(len(labels))])
        self.probs.extend(torch.softmax(logits, dim=1).cpu().numpy())
        self.labels.extend(int(v) for v in labels)
        self.cases.extend(str(c) for c in cases)
        if self.network is not None:  # keep the first case of each class for Grad-CAM++
            taken = {lab for _, lab in self.samples.values()}
            for i, (case, lab) in enumerate(zip(cases, labels, strict=True)):
                if len(self.samples) < self.gradcam_cases and (
                    lab not in taken or len(taken) >= len(self.class_names)
                ):
                    self.samples[str(case)] = (out["image"][i : i + 1].detach(), int(lab))
                    taken.add(lab)

    def _complete(self, engine: Engine) -> None:
        if not self.labels:
            return
        probs = np.stack(self.probs)
        report = classification_report(
            self.labels, probabilities=probs, class_names=self.class_names
        )
        metrics = engine.state.metrics
        metrics.setdefault("val_balanced_accuracy", report.balanced_accuracy)
        metrics["val_accuracy"] = report.accuracy
        metrics["val_macro_f1"] = float(report.f1.mean())
        if report.roc_auc is not None and not np.isnan(report.roc_auc_macro):
            metrics["val_macro_roc_auc"] = report.roc_auc_macro
        for name, recall in zip(self.class_names, report.recall, strict=True):
            metrics[f"val_recall_{name}"] = float(recall)
        value = float(metrics.get(self.key_metric, report.balanced_accuracy))
        if value <= self.best:
            return
        self.best = value
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_classification_report(report, self.output_dir)
        pred = probs.argmax(1)
        rows = [
            {"case_id": c, "label": self.class_names[t], "pred": self.class_names[p]}
            | {f"p_{n}": float(v) for n, v in zip(self.class_names, pr, strict=True)}
            for c, t, p, pr in zip(self.cases, self.labels, pred, probs, strict=True)
        ]
        write_csv_atomic(rows, self.output_dir / "val_per_case.csv")
        self._gradcam(engine, dict(zip(self.cases, probs, strict=True)))

    def _gradcam(self, engine: Engine, probs: Mapping[str, np.ndarray]) -> None:
        if self.network is None or not self.samples:
            return
        import nibabel as nib

        out = self.output_dir / "gradcam"
        out.mkdir(parents=True, exist_ok=True)
        for case, (image, label) in self.samples.items():
            cam = gradcam_pp(self.network, image, target_layer=self.target_layer)
            volume = image[0, 0].float().cpu().numpy()
            affine = getattr(image, "affine", None)
            affine = np.eye(4) if affine is None else np.asarray(affine).reshape(-1, 4, 4)[0]
            with atomic_path(out / f"{case}.nii.gz", suffix=".nii.gz") as tmp:
                nib.save(nib.Nifti1Image(cam, affine), tmp)
            p = probs[case]
            title = (
                f"{case}: true {self.class_names[label]}, predicted "
                f"{self.class_names[int(p.argmax())]} (p={p.max():.2f}), epoch {engine.state.epoch}"
            )
            save_gradcam_png(out / f"{case}.png", volume, cam, title)

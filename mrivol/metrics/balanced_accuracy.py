"""Balanced accuracy as an ignite metric, for classification evaluators."""

from __future__ import annotations

from typing import Any

import torch

from mrivol.metrics.classification import classification_report

__all__ = ["BalancedAccuracy"]


def _balanced_accuracy_metric() -> type:
    from ignite.metrics import Metric

    class BalancedAccuracy(Metric):
        """Ignite metric: mean recall over the classes present in the labels.

        ``ignite.metrics.Recall(average=True)`` also averages classes absent from the epoch's
        labels (as 0), which differs on small validation folds; this one matches
        :attr:`mrivol.metrics.classification.ClassificationReport.balanced_accuracy`.
        Update with ``(logits (B, K), labels (B,))``.
        """

        def reset(self) -> None:
            self._pred: list[int] = []
            self._true: list[int] = []

        def update(self, output: tuple[torch.Tensor, torch.Tensor]) -> None:
            logits, labels = output
            self._pred += torch.as_tensor(logits).argmax(1).reshape(-1).tolist()
            self._true += torch.as_tensor(labels).reshape(-1).tolist()

        def compute(self) -> float:
            if not self._true:
                raise RuntimeError("BalancedAccuracy: no samples were evaluated this epoch.")
            k = max(self._pred + self._true) + 1
            return classification_report(self._true, self._pred, num_classes=k).balanced_accuracy

    return BalancedAccuracy


def BalancedAccuracy(**kwargs: Any) -> Any:  # noqa: N802 - a class factory (ignite is optional)
    """An ignite ``Metric`` computing balanced accuracy (see ``_balanced_accuracy_metric``).

    Args:
        **kwargs: ``ignite.metrics.Metric`` arguments, e.g. ``output_transform``.

    Examples:
        >>> m = BalancedAccuracy()
        >>> m.update((torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), torch.tensor([0, 1, 1])))
        >>> m.compute()
        0.75
    """
    return _balanced_accuracy_metric()(**kwargs)

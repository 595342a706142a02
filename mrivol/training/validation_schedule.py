"""Cheap validation at scale: validate every k epochs, the costly metrics every m-th time.

Sliding-window validation of every case every epoch, with HD95 and the lesion-wise metrics in
numpy on the CPU, can take hours of a 300-epoch gpu-profile run. Two config keys bound it:
``val_interval`` (validate every k epochs, and always after the last one:
:class:`ScheduledValidation`) and ``surface_metrics_every`` (compute the surface and
lesion-wise metrics on every m-th validation and at the end, ``0``: only at the end:
:class:`ScheduledMetric`). Dice, the key metric that picks the best checkpoint, is computed at
every validation.
"""

from __future__ import annotations

from typing import Any

from monai.handlers import IgniteMetricHandler, ValidationHandler

__all__ = ["ScheduledMetric", "ScheduledValidation", "is_due"]


def is_due(epoch: int, *, every: int, val_interval: int, max_epochs: int) -> bool:
    """Whether the costly metrics run at the validation after ``epoch``.

    Args:
        epoch: the training epoch just finished (the evaluator's epoch).
        every: compute them on every ``every``-th validation; ``0``: only at the end.
        val_interval: epochs between validations.
        max_epochs: the training's last epoch (always due there).

    Examples:
        >>> [e for e in range(1, 31) if is_due(e, every=2, val_interval=5, max_epochs=30)]
        [10, 20, 30]
        >>> is_due(1, every=0, val_interval=1, max_epochs=1)  # a single evaluation pass
        True
    """
    if every < 0 or val_interval < 1:
        raise ValueError(
            f"surface_metrics_every ({every}) >= 0, val_interval ({val_interval}) >= 1"
        )
    if epoch >= max_epochs:
        return True
    validation = epoch // val_interval
    return every > 0 and validation % every == 0


class ScheduledValidation(ValidationHandler):
    """MONAI's ``ValidationHandler`` every ``interval`` epochs and after the last epoch.

    With ``interval=5`` and 42 epochs it validates after epochs 5, 10, ..., 40 and 42, so the
    final weights are always scored.

    Args:
        interval: epochs between validations (``val_interval``).
        validator: the evaluator.
    """

    def __init__(self, *, interval: int, validator: Any = None) -> None:
        super().__init__(interval=interval, validator=validator, epoch_level=True)

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        def due(engine: Any, epoch: int) -> bool:
            return epoch % self.interval == 0 or epoch >= engine.state.max_epochs

        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=due), self)


class ScheduledMetric(IgniteMetricHandler):
    """MONAI's ``IgniteMetricHandler`` that only runs when :func:`is_due`.

    On the other validations it neither updates nor reports: its name (and the per-region
    ``<name>_<region>`` values the validation report derives from it) is removed from the
    evaluator's metrics, so MLflow logs it only for the epochs where it was computed.

    Args:
        every: see :func:`is_due` (``surface_metrics_every``).
        val_interval: epochs between validations.
        max_epochs: the training's last epoch.
        **kwargs: ``IgniteMetricHandler`` arguments (``metric_fn``, ``output_transform``, ...).

    Examples:
        >>> from mrivol.metrics import BratsHD95Metric
        >>> hd95 = ScheduledMetric(metric_fn=BratsHD95Metric(), every=4, val_interval=5)
    """

    def __init__(
        self, *, every: int = 1, val_interval: int = 1, max_epochs: int = 1, **kwargs: Any
    ):
        is_due(1, every=every, val_interval=val_interval, max_epochs=max_epochs)  # validates
        self.every, self.val_interval, self.max_epochs = every, val_interval, max_epochs
        self.due = True
        super().__init__(**kwargs)

    def started(self, engine: Any) -> None:
        self.due = is_due(
            engine.state.epoch,
            every=self.every,
            val_interval=self.val_interval,
            max_epochs=self.max_epochs,
        )
        if self.due:
            super().started(engine)
            return
        name = self._name or ""
        for key in [k for k in engine.state.metrics if k == name or k.startswith(f"{name}_")]:
            del engine.state.metrics[key]
        getattr(engine.state, "metric_details", {}).pop(name, None)

    def iteration_completed(self, engine: Any) -> None:
        if self.due:
            super().iteration_completed(engine)

    def completed(self, engine: Any, name: str) -> None:
        if self.due:
            super().completed(engine, name)

"""A wall-time budget per training run: ``mrivol study --budget-minutes`` (the fair CPU comparison).

Every network gets the same minutes per fold instead of the same epochs. After each epoch the
handler estimates how many epochs fit in the budget from the epochs so far, sets the trainer's
``max_epochs`` to that (so the progress line's time left and the cosine schedule's ``T_max``
follow), so the run ends when the next epoch would not fit. The validation of the last epoch
still runs (it is attached to the same event, after this handler). An interrupted run that
resumes gets the budget again from its restart.

ignite's ``TimeLimit`` stops mid-epoch, before the epoch's validation and checkpoint; hence
this handler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["TimeBudget"]


class TimeBudget:
    """End training before the next epoch would exceed ``seconds`` of wall time.

    Args:
        seconds: the budget (> 0).
        lr_scheduler: a scheduler with ``T_max`` (cosine) to fit to the estimated epochs;
            ``None`` leaves the schedule alone.
        clock: seconds now (``time.perf_counter``; a test passes its own).

    Examples:
        >>> TimeBudget(seconds=60).seconds
        60.0
    """

    def __init__(
        self,
        *,
        seconds: float,
        lr_scheduler: Any = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not seconds > 0:
            raise ValueError(f"TimeBudget: seconds must be > 0, got {seconds!r}")
        self.seconds = float(seconds)
        self.lr_scheduler = lr_scheduler
        self.clock = clock
        self.start: float | None = None
        self.first_epoch = 0

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def started(self, engine: Any) -> None:
        self.start = self.clock()
        self.first_epoch = int(engine.state.epoch)

    def epochs_that_fit(self, elapsed: float, done: int) -> int:
        """Epochs (counting the ``done`` ones) that fit in the budget at ``elapsed / done`` each."""
        return max(done, int(self.seconds // (elapsed / max(done, 1))))

    def epoch_completed(self, engine: Any) -> None:
        now = self.clock()
        elapsed = now - (self.start if self.start is not None else now)
        done = int(engine.state.epoch) - self.first_epoch
        fit = self.first_epoch + self.epochs_that_fit(elapsed, done)
        engine.state.max_epochs = max(int(engine.state.epoch), min(engine.state.max_epochs, fit))
        if self.lr_scheduler is not None and hasattr(self.lr_scheduler, "T_max"):
            self.lr_scheduler.T_max = engine.state.max_epochs
        # max_epochs == epoch ends the run after this epoch's handlers (COMPLETED still fires)

"""The wall-time budget ends training at the last epoch that fits, and stretches the schedule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mrivol.crossval import TimeBudget


def _engine(epoch: int, max_epochs: int) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(epoch=epoch, max_epochs=max_epochs))


@pytest.mark.parametrize(
    ("elapsed", "done", "expected"), [(10.0, 1, 6), (35.0, 3, 5), (70.0, 1, 1)], ids=str
)
def test_epochs_that_fit(elapsed, done, expected):
    assert TimeBudget(seconds=60).epochs_that_fit(elapsed, done) == expected


def test_max_epochs_and_cosine_follow_the_estimate():
    clock = iter([100.0, 112.0, 124.0])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    budget = TimeBudget(seconds=50, lr_scheduler=sched, clock=lambda: next(clock))
    engine = _engine(0, 1000)
    budget.started(engine)
    engine.state.epoch = 1
    budget.epoch_completed(engine)  # 12 s an epoch: 4 fit
    assert engine.state.max_epochs == 4 and sched.T_max == 4
    engine.state.epoch = 2
    budget.epoch_completed(engine)
    assert engine.state.max_epochs == 4


def test_a_resumed_run_counts_from_its_restart():
    clock = iter([0.0, 30.0])
    budget, engine = TimeBudget(seconds=60, clock=lambda: next(clock)), _engine(5, 1000)
    budget.started(engine)
    engine.state.epoch = 6
    budget.epoch_completed(engine)  # one epoch of 30 s since the restart: 2 fit, so 7
    assert engine.state.max_epochs == 7


def test_a_budget_never_raises_the_configured_epochs():
    clock = iter([0.0, 1.0])
    budget, engine = TimeBudget(seconds=600, clock=lambda: next(clock)), _engine(0, 3)
    budget.started(engine)
    engine.state.epoch = 1
    budget.epoch_completed(engine)
    assert engine.state.max_epochs == 3


def test_a_non_positive_budget_is_refused():
    with pytest.raises(ValueError, match="seconds"):
        TimeBudget(seconds=0)

"""Training-progress handlers on a plain ignite engine: what the user reads each epoch."""

from __future__ import annotations

import warnings

import pytest
import torch
from ignite.engine import Engine, Events

from mrivol.training.gan_samples import GanLossLogger
from mrivol.training.handlers import EpochStatsHandler, ProgressHandler


def _engine(step) -> Engine:
    return Engine(lambda engine, batch: step(batch))


def test_supervised_epoch_line_shows_mean_loss_and_time_left(capsys):
    weight = torch.ones(1, requires_grad=True)
    engine = _engine(lambda b: [{"loss": (weight * b).sum()}])  # graph tensors, as MONAI's
    EpochStatsHandler().attach(engine)
    ProgressHandler().attach(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # item() of a graph tensor must not warn
        engine.run([1.0, 3.0], max_epochs=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2  loss 2.0000")  # mean of 1 and 3
    assert "s/epoch, ~" in lines[1] and "min left" in lines[1]
    assert engine.state.metrics["train_loss"] == pytest.approx(2.0)


def test_gan_epoch_line_shows_generator_and_discriminator_losses(capsys):
    engine = _engine(lambda b: {"g_loss": torch.tensor(b), "d_loss": torch.tensor(2 * b)})
    GanLossLogger().attach(engine)  # publishes gan_g_loss / gan_d_loss before the progress line
    ProgressHandler(losses=("g_loss", "d_loss")).attach(engine)
    engine.run([1.0, 2.0], max_epochs=1)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch 1/1"))
    assert "g_loss 1.5000" in line and "d_loss 3.0000" in line


def test_validation_line_shows_dice_regions_and_the_class_accuracy_of_a_multitask_run(capsys):
    validator = Engine(lambda engine, batch: None)
    trainer = _engine(lambda b: [{"loss": torch.tensor(b)}])

    @trainer.on(Events.EPOCH_COMPLETED)
    def _validate(engine):  # what ValidationHandler + the metric handlers leave behind
        validator.state.epoch = engine.state.epoch
        validator.state.metrics = {"val_mean_dice": 0.5, "val_dice_tc": 0.4, "val_accuracy": 0.75}
        validator.state.best_metric, validator.state.best_metric_epoch = 0.5, 1

    validator.state.key_metric_name = "val_mean_dice"  # as MONAI's evaluators set it
    ProgressHandler(validator=validator).attach(trainer)
    trainer.run([1.0], max_epochs=1)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch 1/1"))
    assert "val dice 0.500 (tc 0.400)" in line and "accuracy 0.750" in line

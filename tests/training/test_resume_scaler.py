"""Exact fp16-style resume: the gradient scaler (loss scale, growth counter) is in the checkpoint.

A CPU ``torch.amp.GradScaler`` stands in for CUDA's: the same state machine (a step whose
gradients hold inf is skipped and halves the scale; ``growth_interval`` clean steps double it).
An ignite engine with a ``scaler`` attribute, as MONAI's ``SupervisedTrainer`` has under fp16
AMP, trains a small model through overflowing steps; 2 epochs + resume + 2 epochs must equal 4
epochs in one go, weights and scaler state alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from mrivol.training.resume import RandomStates, ResumeCheckpoint

EPOCHS = 4
OVERFLOW_AT = {3, 4, 9}  # iterations whose loss is scaled to inf (skipped steps, scale halved)


def _training(path: Path, *, resume: bool) -> tuple:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    data = [torch.randn(2, 4, generator=torch.Generator().manual_seed(i)) for i in range(3)]

    def step(engine: Engine, x: torch.Tensor) -> float:
        optimizer.zero_grad()
        loss = model(x).pow(2).mean()
        if engine.state.iteration in OVERFLOW_AT:
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())

    engine = Engine(step)
    engine.scaler = scaler  # where MONAI's SupervisedTrainer keeps it under fp16 AMP
    ResumeCheckpoint(
        path=path, save_dict={"model": model, "optimizer": optimizer},
        random_states=RandomStates(), resume=resume,
    ).attach(engine)  # fmt: skip
    return engine, model, scaler, data


def _run(path: Path, *, epochs: int, resume: bool = False):
    engine, model, scaler, data = _training(path, resume=resume)
    engine.run(data, max_epochs=epochs)
    return model, scaler


def test_resume_restores_the_gradient_scaler_exactly(tmp_path):
    reference, ref_scaler = _run(tmp_path / "ref.pt", epochs=EPOCHS)
    assert ref_scaler.get_scale() != 2.0**10  # overflows and growth moved the scale

    ckpt = tmp_path / "resume.pt"
    _, half = _run(ckpt, epochs=2)
    assert half.state_dict() != ref_scaler.state_dict()  # the resume has something to restore
    assert "scaler" in torch.load(ckpt, weights_only=False)
    resumed, scaler = _run(ckpt, epochs=EPOCHS, resume=True)
    assert scaler.state_dict() == ref_scaler.state_dict()
    for a, b in zip(resumed.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_checkpoint_without_the_scaler_is_refused_not_resumed_inexactly(tmp_path):
    ckpt = tmp_path / "resume.pt"
    _run(ckpt, epochs=2)
    state = torch.load(ckpt, weights_only=False)
    del state["scaler"]  # as written before the scaler was saved
    torch.save(state, ckpt)
    with pytest.raises(KeyError, match="has no 'scaler'"):
        _run(ckpt, epochs=EPOCHS, resume=True)

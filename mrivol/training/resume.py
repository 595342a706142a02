"""Exact resume: periodic, atomic checkpoints of everything that decides the next epoch.

MONAI's ``CheckpointSaver`` keeps the best and the final weights for users; resuming a killed
run needs more than weights — optimizer, scheduler, gradient scaler, the engine's epoch and
iteration, the best validation metric so far, and every random generator (python, numpy,
torch CPU and CUDA, and the private generator of each random MONAI transform), so that the
epochs after a resume see the same patches, flips and shuffles as an uninterrupted run.
MONAI's saver also writes non-atomically; a kill during the write must not leave a corrupt file.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrivol.io import atomic_path
from mrivol.training.distributed import rank

__all__ = ["BestCheckpoint", "BestMetricState", "RandomStates", "ResumeCheckpoint"]


def _randomizables(transform: Any) -> list[Any]:
    """Every MONAI ``Randomizable`` reachable from ``transform``, in a stable order.

    Dictionary transforms keep their own generator *and* wrap an array transform with another
    one (``RandScaleIntensityd.scaler``, ``RandCropByPosNegLabeld.cropper``, ...), which is the
    one that draws: so attributes are searched too, not only ``Compose`` children.
    """
    from monai.transforms import Randomizable

    found: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 5:
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            children = list(obj)
        elif type(obj).__module__.startswith(("monai.", "mrivol.")) and hasattr(obj, "__dict__"):
            if isinstance(obj, Randomizable):
                found.append(obj)
            children = [v for k, v in sorted(vars(obj).items()) if k != "R"]
        else:
            return
        for child in children:
            visit(child, depth + 1)

    visit(transform, 0)
    return found


class RandomStates:
    """``state_dict`` / ``load_state_dict`` over all random generators of a training process.

    Args:
        transforms: the training transform chain whose random transforms' generators are saved.
    """

    def __init__(self, transforms: Any = None) -> None:
        self.transforms = transforms

    def state_dict(self) -> dict[str, Any]:
        state = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),  # noqa: NPY002 - the legacy global RNG is what we save
            "torch": torch.get_rng_state(),
            "transforms": [t.R.get_state() for t in _randomizables(self.transforms)],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])  # noqa: NPY002
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        randomizables = _randomizables(self.transforms)
        if len(randomizables) != len(state["transforms"]):
            raise ValueError(
                f"the checkpoint holds {len(state['transforms'])} random transform states but the "
                f"training chain has {len(randomizables)}: the config changed since it was saved"
            )
        for t, s in zip(randomizables, state["transforms"], strict=True):
            t.R.set_state(s)


class BestMetricState:
    """The evaluator's best metric and its epoch, as a checkpointable object."""

    def __init__(self, evaluator: Any) -> None:
        self.evaluator = evaluator

    def state_dict(self) -> dict[str, Any]:
        s = self.evaluator.state
        return {"best_metric": s.best_metric, "best_metric_epoch": s.best_metric_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.evaluator.state.best_metric = state["best_metric"]
        self.evaluator.state.best_metric_epoch = state["best_metric_epoch"]


class ResumeCheckpoint:
    """Save a resume checkpoint every ``interval`` epochs; load it at start when resuming.

    Attach it after ``ValidationHandler`` so a checkpoint includes that epoch's validation.
    Rank 0 writes ``path`` (objects of ``save_dict``, the model unwrapped from DDP); every rank
    writes its own random states to ``<path stem>.rng<rank>.pt``. Both are written atomically.

    Args:
        path: the checkpoint file (e.g. ``<ckpt_dir>/resume.pt``).
        save_dict: ``{"model": ..., "optimizer": ..., "lr_scheduler": ..., "best": ...}``; the
            engine it is attached to is added as ``"trainer"`` (epoch and iteration), and its
            gradient scaler (``engine.scaler``, MONAI's trainer with fp16 AMP) as ``"scaler"``:
            the loss scale and its growth counter decide which of the next steps are skipped.
        random_states: the process's :class:`RandomStates`.
        interval: epochs between checkpoints.
        resume: load ``path`` at start if it exists.
    """

    def __init__(
        self,
        *,
        path: str | Path,
        save_dict: Mapping[str, Any],
        random_states: RandomStates,
        interval: int = 1,
        resume: bool = False,
    ) -> None:
        if interval < 1:
            raise ValueError(f"checkpoint interval must be >= 1 epoch, got {interval}")
        self.path = Path(path)
        self.save_dict = dict(save_dict)
        self.random_states = random_states
        self.interval = interval
        self.resume = resume
        self.resumed_from: int | None = None

    def _rng_path(self, process: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.rng{process}.pt")

    @staticmethod
    def _unwrap(obj: Any) -> Any:
        return obj.module if isinstance(obj, torch.nn.parallel.DistributedDataParallel) else obj

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        self.save_dict["trainer"] = engine
        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.STARTED, self._save_last)

    def _save_last(self, engine: Any) -> None:
        """Register :meth:`save` once every other handler is attached, so the checkpoint of an
        epoch is written after its validation and its MLflow metrics: a kill between the two
        then loses no logged epoch (a resume never skips an epoch's metrics)."""
        from ignite.engine import Events

        event = Events.EPOCH_COMPLETED(every=self.interval)
        if not engine.has_event_handler(self.save, event):
            engine.add_event_handler(event, self.save)

    @staticmethod
    def _with_scaler(save_dict: Mapping[str, Any], engine: Any) -> dict[str, Any]:
        """``save_dict`` plus the engine's gradient scaler (fp16 on CUDA), when it has one."""
        scaler = getattr(engine, "scaler", None)
        return {**save_dict, "scaler": scaler} if scaler is not None else dict(save_dict)

    def save(self, engine: Any) -> None:
        me = rank()
        if me == 0:
            objects = self._with_scaler(self.save_dict, engine)
            state = {k: self._unwrap(v).state_dict() for k, v in objects.items() if v is not None}
            with atomic_path(self.path, suffix=".pt") as tmp:
                torch.save(state, tmp)
        with atomic_path(self._rng_path(me), suffix=".pt") as tmp:
            torch.save(self.random_states.state_dict(), tmp)

    def load(self, engine: Any) -> None:
        if not (self.resume and self.path.is_file()):
            return
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        max_epochs = engine.state.max_epochs
        for key, obj in self._with_scaler(self.save_dict, engine).items():
            if obj is None:
                continue
            if key not in state:
                raise KeyError(
                    f"resume checkpoint {self.path} has no {key!r}: written by another config"
                )
            self._unwrap(obj).load_state_dict(state[key])
        engine.state.max_epochs = max_epochs  # the command line's EPOCHS wins over the saved value
        rng = self._rng_path(rank())
        if rng.is_file():
            self.random_states.load_state_dict(
                torch.load(rng, map_location="cpu", weights_only=False)
            )
        self.resumed_from = engine.state.epoch
        print(f"resumed from {self.path} after epoch {engine.state.epoch}", flush=True)

    @staticmethod
    def exists(ckpt_dir: str | os.PathLike) -> bool:
        """Whether a run directory holds a resume checkpoint."""
        return (Path(ckpt_dir) / "resume.pt").is_file()


class BestCheckpoint:
    """Write the network's weights to ``path`` atomically whenever the key metric improves.

    Attached to the evaluator. Unlike a fresh ``CheckpointSaver`` after a resume, it knows the
    best score so far (the evaluator's ``best_metric``, restored by :class:`BestMetricState`).
    The file holds the plain ``state_dict`` (DDP unwrapped), which MONAI's ``CheckpointLoader``
    reads with ``load_dict={"model": network}``.

    Args:
        path: e.g. ``<ckpt_dir>/model.pt``.
        network: the trained network.
    """

    def __init__(self, *, path: str | Path, network: torch.nn.Module) -> None:
        self.path = Path(path)
        self.network = network

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        if rank() != 0 or engine.state.best_metric_epoch != engine.state.epoch:
            return
        with atomic_path(self.path, suffix=".pt") as tmp:
            torch.save(ResumeCheckpoint._unwrap(self.network).state_dict(), tmp)

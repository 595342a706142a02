"""Transfer learning: load encoder weights from a local checkpoint, freeze, then unfreeze.

The protocol of the seed papers (Tajbakhsh et al., "Convolutional Neural Networks for Medical
Image Analysis: Full Training or Fine Tuning?", IEEE TMI 35, 2016): start from an encoder
trained elsewhere (a ``brats_seg`` run's ``model.pt`` or a file the user supplies), train the
new head with the encoder frozen for ``freeze_epochs``, then train everything at a lower
learning rate. Checkpoints are read with ``torch.load(..., weights_only=True)`` (no pickled
code runs); nothing is downloaded.

Examples:
    >>> load_encoder_weights(net, "runs/brats_seg-.../checkpoints/model.pt")  # doctest: +SKIP
    >>> FreezeEncoder(network=net, optimizer=opt, freeze_epochs=3).attach(trainer)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["FreezeEncoder", "load_encoder_weights", "set_encoder_trainable"]


def _module(network: torch.nn.Module) -> torch.nn.Module:
    return network.module if hasattr(network, "module") else network


def load_encoder_weights(
    network: torch.nn.Module,
    path: str | Path | None,
    *,
    prefix: str = "encoder.",
    source_prefix: str | None = None,
) -> list[str]:
    """Copy the ``prefix`` parameters of a checkpoint into ``network``.

    Args:
        network: the model to initialise (e.g. :class:`mrivol.networks.MultiTaskUNet`).
        path: a state dict saved with ``torch.save`` (a bare state dict, or ``{"model": ...}``
            as MONAI's ``CheckpointSaver`` / ``ResumeCheckpoint`` write); ``None`` loads nothing
            (a bundle's "no pretrained encoder" default).
        prefix: parameter-name prefix of the encoder in ``network``.
        source_prefix: its prefix in the checkpoint (default: ``prefix``; a DDP ``module.``
            prefix is stripped).

    Returns:
        The loaded parameter names.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: no encoder tensor in the checkpoint, or a shape mismatch (naming the keys).
    """
    if path is None:
        return []
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder checkpoint {path} not found; pass a local .pt file.")
    state: Any = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    source_prefix = prefix if source_prefix is None else source_prefix
    own = _module(network).state_dict()
    picked = {
        prefix + k[len(source_prefix) :]: v for k, v in state.items() if k.startswith(source_prefix)
    }
    if not picked:
        raise ValueError(
            f"{path}: no tensor starts with {source_prefix!r}; its keys begin "
            f"{sorted(state)[:5]}. Pass source_prefix= to name the encoder in this checkpoint."
        )
    bad = [k for k, v in picked.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise ValueError(
            f"{path}: {len(bad)} encoder tensor(s) do not fit the network (missing or other "
            f"shape): {bad[:5]}. Use a checkpoint of the same encoder configuration."
        )
    _module(network).load_state_dict(picked, strict=False)
    return sorted(picked)


def set_encoder_trainable(
    network: torch.nn.Module, trainable: bool, *, prefix: str = "encoder."
) -> int:
    """Set ``requires_grad`` of the ``prefix`` parameters; returns how many were changed."""
    n = 0
    for name, param in _module(network).named_parameters():
        if name.startswith(prefix):
            param.requires_grad_(trainable)
            n += 1
    return n


class FreezeEncoder:
    """Ignite handler: encoder frozen for ``freeze_epochs``, then trainable at a lower LR.

    While frozen, encoder parameters have ``requires_grad=False`` (they get no gradient, so
    ``torch.optim`` optimisers skip them, weight decay included) and the encoder runs in eval
    mode (batch-norm statistics do not move; a forward pre-hook on the network sets it, as MONAI's
    trainer calls ``network.train()`` at every iteration): its state stays bit-identical. After
    ``freeze_epochs`` epochs it is unfrozen and every parameter group's learning rate is
    multiplied by ``unfreeze_lr_factor``.

    Args:
        network: the model.
        optimizer: its optimizer (built over all parameters).
        freeze_epochs: epochs with the encoder frozen (0: no freezing).
        unfreeze_lr_factor: learning-rate factor applied when unfreezing.
        prefix: parameter-name prefix of the encoder.
    """

    def __init__(
        self,
        *,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        freeze_epochs: int,
        unfreeze_lr_factor: float = 0.1,
        prefix: str = "encoder.",
    ) -> None:
        if freeze_epochs < 0 or not 0 < unfreeze_lr_factor <= 1:
            raise ValueError(
                f"FreezeEncoder: need freeze_epochs >= 0 and 0 < unfreeze_lr_factor <= 1, got "
                f"{freeze_epochs} and {unfreeze_lr_factor}."
            )
        self.network, self.optimizer = network, optimizer
        self.freeze_epochs, self.factor, self.prefix = (
            int(freeze_epochs),
            unfreeze_lr_factor,
            prefix,
        )
        self._frozen_now = False

    @property
    def _encoder(self) -> torch.nn.Module:
        return getattr(_module(self.network), self.prefix.rstrip("."))

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        _module(self.network).register_forward_pre_hook(self._keep_eval)

    def frozen(self, epoch: int) -> bool:
        """Whether the encoder is frozen during (1-based) ``epoch``."""
        return epoch <= self.freeze_epochs

    def _epoch_started(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        self._frozen_now = self.frozen(epoch)
        set_encoder_trainable(self.network, not self._frozen_now, prefix=self.prefix)
        if self.freeze_epochs and epoch == self.freeze_epochs + 1:
            for group in self.optimizer.param_groups:
                group["lr"] *= self.factor
                if "initial_lr" in group:  # keep a running LR scheduler's base in step
                    group["initial_lr"] *= self.factor

    def _keep_eval(self, network: torch.nn.Module, args: Any) -> None:
        if self._frozen_now and network.training:
            self._encoder.eval()

"""Monte Carlo dropout: stochastic forward passes at inference time.

Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing Model Uncertainty in Deep
Learning", ICML 2016 (https://arxiv.org/abs/1506.02142). Kendall et al., "Bayesian SegNet",
BMVC 2017, for segmentation.

Neither MONAI nor torch ships a helper that switches only the dropout layers to train mode (a
plain ``model.train()`` would also make batch norm use batch statistics and update its running
averages), so this module does it by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from monai.networks.layers import DropPath
from torch import nn

__all__ = ["DROPOUT_TYPES", "McDropoutHandle", "enable_mc_dropout", "mc_dropout", "mc_predict"]

#: Module types treated as dropout layers: every ``torch.nn.Dropout*`` (including
#: ``AlphaDropout`` / ``FeatureAlphaDropout``, all subclasses of ``_DropoutNd``; MONAI's
#: ``Dropout`` factory returns these) and MONAI's stochastic depth ``DropPath`` (Swin UNETR).
DROPOUT_TYPES: tuple[type[nn.Module], ...] = (nn.modules.dropout._DropoutNd, DropPath)


def _drop_probability(module: nn.Module) -> float:
    """Return the drop probability of a dropout-like module (``p`` or ``drop_prob``)."""
    return float(getattr(module, "p", getattr(module, "drop_prob", 0.0)))


class McDropoutHandle:
    """Restores the train/eval flags a model had before :func:`enable_mc_dropout`.

    Args:
        modes: every module of the model with its ``training`` flag before the switch.
        num_dropout_layers: how many dropout layers were switched to train mode.

    Examples:
        >>> handle = enable_mc_dropout(model)  # doctest: +SKIP
        >>> handle.restore()  # doctest: +SKIP
    """

    def __init__(self, modes: list[tuple[nn.Module, bool]], num_dropout_layers: int) -> None:
        self._modes = modes
        self.num_dropout_layers = num_dropout_layers
        self.restored = False

    def restore(self) -> None:
        """Put every module back into the mode it had before; calling it twice is harmless."""
        for module, was_training in self._modes:
            module.training = was_training
        self.restored = True

    def __enter__(self) -> McDropoutHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def enable_mc_dropout(model: nn.Module) -> McDropoutHandle:
    """Switch ``model`` to eval mode except its dropout layers, which go to train mode.

    Batch norm, instance norm and everything else stay in eval mode (running statistics are
    used and not updated). Gradient recording is not changed: wrap the passes in
    ``torch.no_grad()``, or use :func:`mc_dropout` / :func:`mc_predict`, which do.

    Args:
        model: the network.

    Returns:
        A handle whose ``restore()`` puts back every module's previous mode.

    Raises:
        ValueError: if the model has no dropout layer with a drop probability above 0, since
            every MC sample would then be identical.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
        >>> handle = enable_mc_dropout(net)
        >>> net[1].training, net[0].training
        (True, False)
        >>> handle.restore()
    """
    modes = [(m, m.training) for m in model.modules()]
    dropouts = [
        m for m in model.modules() if isinstance(m, DROPOUT_TYPES) and _drop_probability(m) > 0
    ]
    if not dropouts:
        raise ValueError(
            f"MC dropout: {type(model).__name__} has no dropout layer with p > 0, so every "
            "stochastic pass would return the same prediction. Build the network with a "
            "dropout rate > 0 (e.g. `dropout=0.1`, `dropout_rate=0.1` or `drop_rate=0.1`)."
        )
    model.eval()
    for m in dropouts:
        m.train()
    return McDropoutHandle(modes, len(dropouts))


@contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager: dropout active, everything else in eval mode, no gradients recorded.

    Args:
        model: the network.

    Yields:
        The same model, ready for stochastic passes; modes are restored on exit.

    Raises:
        ValueError: if the model has no dropout layer with p > 0.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
        >>> with mc_dropout(net):
        ...     samples = torch.stack([net(torch.ones(1, 4)) for _ in range(3)])
    """
    handle = enable_mc_dropout(model)
    try:
        with torch.no_grad():
            yield model
    finally:
        handle.restore()


def mc_predict(
    model: nn.Module, x: torch.Tensor, *, samples: int, batch_size: int | None = None
) -> torch.Tensor:
    """Run ``samples`` stochastic forward passes of ``model`` on ``x``, batched.

    The input is repeated ``samples`` times along the batch axis and pushed through the model
    in chunks of at most ``batch_size`` rows; dropout draws an independent mask for every row,
    so each repeat is one independent MC sample.

    Args:
        model: the network (returns one tensor (B, C', ...) in eval mode).
        x: input batch (B, C, H, W, D).
        samples: number of stochastic passes T (>= 1).
        batch_size: rows per forward call (copies x batch); ``None`` runs all T*B rows at once.

    Returns:
        Tensor (T, B, C', ...) of raw model outputs (logits), on the model's output device.

    Raises:
        ValueError: if ``samples`` or ``batch_size`` is < 1, or the model has no dropout.
        TypeError: if the model does not return a single tensor.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.Dropout(0.5))
        >>> mc_predict(net, torch.ones(2, 1, 4, 4, 4), samples=5, batch_size=4).shape
        torch.Size([5, 2, 2, 4, 4, 4])
    """
    if samples < 1:
        raise ValueError(f"mc_predict: samples must be >= 1, got {samples}.")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"mc_predict: batch_size must be >= 1 or None, got {batch_size}.")
    b = x.shape[0]
    rows = x.repeat(samples, *([1] * (x.ndim - 1)))  # (T*B, C, ...), sample-major
    chunk = rows.shape[0] if batch_size is None else batch_size
    outputs = []
    with mc_dropout(model):
        for start in range(0, rows.shape[0], chunk):
            out = model(rows[start : start + chunk])
            if not isinstance(out, torch.Tensor):
                raise TypeError(
                    f"mc_predict: {type(model).__name__} returned {type(out).__name__}; "
                    "expected one tensor. Wrap the model so it returns the main output only."
                )
            outputs.append(out)
    out = torch.cat(outputs, dim=0)
    return out.reshape(samples, b, *out.shape[1:])

"""Monte Carlo dropout inference: T batched stochastic passes, deterministic prefix computed once.

Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016
(https://arxiv.org/abs/1506.02142); the entropy / mutual-information decomposition follows
Houlsby et al., "Bayesian Active Learning for Classification and Preference Learning" (BALD),
arXiv:1112.5745, and Mehrtash et al., "Confidence Calibration and Predictive Uncertainty
Estimation for Deep Medical Image Segmentation", IEEE TMI 2020.

The brats_seg networks output one sigmoid per region (TC, WT, ET), so every region is a
Bernoulli variable and its entropy is the binary entropy ``H(p) = -p ln p - (1-p) ln(1-p)``
(nats, at most ``ln 2``). For T samples ``p_t``:

* predictive entropy ``H[mean_t p_t]`` (total uncertainty),
* expected entropy ``mean_t H[p_t]`` (aleatoric part),
* mutual information ``H[mean_t p_t] - mean_t H[p_t]`` (epistemic part, >= 0).

Where dropout sits, and what that means for the cost of T samples (``benchmarks/mc_dropout.py``):

* ``mrivol.networks.AGMS3DCNN``: dropout only after the bottleneck and after each decoder block;
  it exposes ``forward_features`` / ``forward_head``, so the encoder runs once per window and
  only the decoder runs T times.
* an ``nn.Sequential`` network (or one whose ``.model`` is one): the children before the first
  child that holds a dropout layer run once.
* MONAI ``UNet`` (the default): dropout in every residual unit, the first one right after the
  first (stride-2) convolution, so nothing is reused; the saving comes from batching alone.

Measured with ``benchmarks/mc_dropout.py`` (one 1x4x64^3 window, T = 20, 2 shared CPU cores,
torch 2.13 CPU, noisy): UNet 20 naive passes 14.5x one pass, 20 batched 2.7x (rows per call
20) / 3.6x (5): on CPU a batch-1 3D convolution is far from the per-row cost of a batch of 20
(0.7-1.5 s vs 0.2 s per row). AG-MS3D-CNN: encoder = 93 % of one pass; naive 16.2x, batched
7.9x (20 rows per call) / 6.4x (5): its full-resolution decoder with attention gates is
memory-bound at 20 rows, so moderate ``batch_size`` is faster there.

Neither MONAI nor torch ships this (MONAI's ``SlidingWindowInferer`` runs one deterministic
network; the prefix split depends on the network's structure), hence the code here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mrivol.inference.mc_dropout import DROPOUT_TYPES, mc_dropout
from mrivol.metrics.uncertainty import binary_entropy

__all__ = [
    "McDropoutPredictor",
    "deterministic_prefix",
    "first_dropout",
]


def first_dropout(model: nn.Module) -> str | None:
    """Name of the first dropout layer of ``model`` in registration order (``None``: none).

    Registration order is execution order for sequential networks such as MONAI's UNet.

    Examples:
        >>> first_dropout(nn.Sequential(nn.Conv3d(1, 1, 1), nn.Dropout(0.1)))
        '1'
    """
    for name, module in model.named_modules():
        if isinstance(module, DROPOUT_TYPES) and getattr(module, "p", 1.0) > 0:
            return name
    return None


def _has_dropout(module: nn.Module) -> bool:
    return any(isinstance(m, DROPOUT_TYPES) for m in module.modules())


def deterministic_prefix(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """Split ``model`` into a deterministic prefix and the stochastic rest, where it can be done.

    Args:
        model: an ``nn.Sequential``, or a network whose ``.model`` attribute is one (MONAI UNet).

    Returns:
        ``(prefix, rest)`` as two ``nn.Sequential`` sharing the original modules, or ``None``
        when the first child already holds dropout (nothing to reuse) or the network is not
        sequential. Networks with ``forward_features`` / ``forward_head`` are handled by
        :class:`McDropoutPredictor` directly.

    Examples:
        >>> net = nn.Sequential(nn.Conv3d(1, 2, 1), nn.ReLU(), nn.Dropout(0.1), nn.Conv3d(2, 1, 1))
        >>> prefix, rest = deterministic_prefix(net)
        >>> len(prefix), len(rest)
        (2, 2)
    """
    seq = model if isinstance(model, nn.Sequential) else getattr(model, "model", None)
    if not isinstance(seq, nn.Sequential):
        return None
    children = list(seq.children())
    cut = next((i for i, c in enumerate(children) if _has_dropout(c)), len(children))
    if cut == 0 or cut == len(children):
        return None
    return nn.Sequential(*children[:cut]), nn.Sequential(*children[cut:])


class McDropoutPredictor(nn.Module):
    """Wrap a segmentation network: sigmoid probabilities, or MC-dropout statistics for T > 1.

    For ``samples == 1`` the network runs once in eval mode and the output is the sigmoid
    probabilities (B, C, H, W, D). For ``samples > 1`` dropout is switched on (everything else
    stays in eval mode), the deterministic prefix is computed once, its output repeated T
    times along the batch axis and the stochastic rest run on ``batch_size`` rows at a time;
    the output is (B, 2C, H, W, D): mean probability (channels ``:C``) and mean binary
    entropy (``C:``). Both are linear in the samples, so MONAI's sliding-window blending of
    windows stays exact; :class:`SplitMcOutputd` turns them into entropy and MI afterwards.

    Args:
        network: the segmentation network, (B, C_in, ...) -> logits (B, C, ...).
        samples: MC samples T (1: deterministic).
        batch_size: rows per stochastic forward call; ``None`` runs all T * B rows at once.

    Raises:
        ValueError: ``samples`` or ``batch_size`` < 1, or T > 1 on a network without dropout.

    Examples:
        >>> net = nn.Sequential(nn.Conv3d(4, 8, 1), nn.Dropout3d(0.2), nn.Conv3d(8, 3, 1))
        >>> McDropoutPredictor(net, samples=5)(torch.randn(2, 4, 8, 8, 8)).shape
        torch.Size([2, 6, 8, 8, 8])
    """

    def __init__(self, network: nn.Module, *, samples: int = 1, batch_size: int | None = None):
        super().__init__()
        if samples < 1:
            raise ValueError(f"McDropoutPredictor: samples must be >= 1, got {samples}.")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"McDropoutPredictor: batch_size must be >= 1, got {batch_size}.")
        if samples > 1 and first_dropout(network) is None:
            raise ValueError(
                f"MC dropout with {samples} samples: {type(network).__name__} has no dropout "
                "layer with p > 0; use a network overlay with dropout > 0 or --mc-samples 1."
            )
        self.network = network
        self.samples = int(samples)
        self.batch_size = batch_size
        self.split = deterministic_prefix(network)

    @property
    def strategy(self) -> str:
        """How the prefix is reused: ``forward_features``, ``sequential_prefix`` or ``none``."""
        if hasattr(self.network, "forward_features") and hasattr(self.network, "forward_head"):
            return "forward_features"
        return "sequential_prefix" if self.split is not None else "none"

    def _prefix_and_head(self) -> tuple[Any, Any]:
        if self.strategy == "forward_features":
            return self.network.forward_features, self.network.forward_head
        if self.split is not None:
            return self.split
        return (lambda x: x), self.network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities (B, C, ...) for T = 1, else [mean prob, mean entropy] (B, 2C, ...)."""
        if self.samples == 1:
            self.network.eval()
            with torch.no_grad():
                return torch.sigmoid(self.network(x))
        prefix, head = self._prefix_and_head()
        b = x.shape[0]
        with mc_dropout(self.network):
            state = prefix(x)
            tensors = list(state) if isinstance(state, (list, tuple)) else [state]
            rows = self.samples * b
            step = rows if self.batch_size is None else self.batch_size
            prob_sum = entropy_sum = None
            for start in range(0, rows, step):
                idx = torch.arange(start, min(start + step, rows), device=x.device) % b
                chunk = [t.index_select(0, idx) for t in tensors]
                logits = head(chunk if isinstance(state, (list, tuple)) else chunk[0])
                prob = torch.sigmoid(logits.float())
                # sum the rows of each original batch item (row r belongs to item r % b)
                p_sum = torch.zeros((b, *prob.shape[1:]), dtype=prob.dtype, device=prob.device)
                h_sum = torch.zeros_like(p_sum)
                p_sum.index_add_(0, idx, prob)
                h_sum.index_add_(0, idx, binary_entropy(prob))
                prob_sum = p_sum if prob_sum is None else prob_sum + p_sum
                entropy_sum = h_sum if entropy_sum is None else entropy_sum + h_sum
        return torch.cat([prob_sum, entropy_sum], dim=1) / self.samples

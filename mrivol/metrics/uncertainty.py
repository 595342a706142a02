"""Voxel-wise uncertainty of Bernoulli (sigmoid) predictions from Monte Carlo samples.

Houlsby et al., "Bayesian Active Learning for Classification and Preference Learning" (BALD),
arXiv:1112.5745: predictive entropy ``H[mean_t p_t]`` (total uncertainty), expected entropy
``mean_t H[p_t]`` (aleatoric part) and their difference, the mutual information (epistemic
part, >= 0). Every sigmoid region is a Bernoulli variable, so the entropy is the binary
entropy in nats (at most ``ln 2``).
"""

from __future__ import annotations

import math

import torch

__all__ = ["LN2", "binary_entropy", "predictive_uncertainty"]

#: Maximum binary entropy in nats: the 100 of the QU-BraTS 0-100 scale for entropy and MI maps.
LN2 = math.log(2.0)


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of Bernoulli probabilities ``p`` (0 at p = 0 or 1, ln 2 at p = 0.5).

    Examples:
        >>> round(float(binary_entropy(torch.tensor(0.5))), 4)
        0.6931
    """
    p = p.clamp(1e-7, 1.0 - 1e-7)
    return -(p * torch.log(p) + (1.0 - p) * torch.log1p(-p))


def predictive_uncertainty(
    mean_prob: torch.Tensor, expected_entropy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictive entropy and mutual information from the MC mean and the mean entropy.

    Args:
        mean_prob: mean over samples of the region probabilities, (B, C, H, W, D).
        expected_entropy: mean over samples of their binary entropies, same shape.

    Returns:
        ``(entropy, mutual_information)``, both (B, C, H, W, D) in nats; MI is clipped at 0
        (window blending can make it a rounding error below).
    """
    entropy = binary_entropy(mean_prob)
    return entropy, (entropy - expected_entropy).clamp_min(0.0)

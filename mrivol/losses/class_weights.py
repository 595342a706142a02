"""Class weights for a class-weighted cross-entropy, from a fold's training labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["inverse_frequency_weights"]


def inverse_frequency_weights(
    datalist: Iterable[Mapping[str, Any]], num_classes: int
) -> torch.Tensor:
    """Class weights ``N / (K * n_k)`` for a class-weighted cross-entropy (1 for absent classes).

    Args:
        datalist: training items with an integer ``label``.
        num_classes: K.

    Returns:
        Float32 tensor (K,); a balanced set gives all ones.

    Examples:
        >>> inverse_frequency_weights([{"label": 0}, {"label": 0}, {"label": 1}], 2).tolist()
        [0.75, 1.5]
    """
    counts = np.bincount([int(i["label"]) for i in datalist], minlength=num_classes)[:num_classes]
    total = counts.sum()
    weights = np.where(counts > 0, total / (num_classes * np.maximum(counts, 1)), 1.0)
    return torch.as_tensor(weights, dtype=torch.float32)

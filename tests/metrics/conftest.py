"""Shared fixtures for the metrics tests: random 3D masks and the DeepMind reference package."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage


def random_blob_mask(
    rng: np.random.Generator, shape: tuple[int, int, int], *, fill: float = 0.15, sigma: float = 2.0
) -> np.ndarray:
    """Return a bool mask of smooth random blobs covering about ``fill`` of the volume."""
    field = ndimage.gaussian_filter(rng.random(shape), sigma=sigma)
    return field > np.quantile(field, 1.0 - fill)


@pytest.fixture
def deepmind_sd(monkeypatch: pytest.MonkeyPatch):
    """DeepMind's surface-distance (PyPI ``surface-distance==0.1``), shimmed for NumPy 2.

    The package uses ``np.Inf`` and ``np.NaN`` (removed in NumPy 2) on empty masks; the
    aliases are restored only for the duration of each test.
    """
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    monkeypatch.setattr(np, "NaN", np.nan, raising=False)
    import surface_distance  # the pinned dev dependency: a missing one fails, never skips

    return surface_distance

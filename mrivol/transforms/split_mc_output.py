"""Split an MC-dropout predictor output into probability, entropy and mutual-information maps."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from mrivol.metrics.uncertainty import predictive_uncertainty

__all__ = ["SplitMcOutputd"]


class SplitMcOutputd(MapTransform):
    """Split a :class:`McDropoutPredictor` output into ``prob``, ``entropy`` and ``mi`` keys.

    A C-channel input (T = 1) becomes ``prob`` only; a 2C-channel one gives ``prob`` (mean
    probability), ``entropy`` (predictive entropy) and ``mi`` (mutual information), each
    (C, H, W, D) in nats, with the input's metadata and applied operations (for ``Invertd``).
    The input key is removed (the label map is derived later from the inverted ``prob``).

    Args:
        keys: the key holding the predictor output (usually ``pred``).
        channels: the number of regions C.
        prefix: prepended to the output key names.
    """

    def __init__(self, keys: KeysCollection, *, channels: int, prefix: str = "") -> None:
        super().__init__(keys)
        self.channels = int(channels)
        self.prefix = prefix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            out = d.pop(key)
            c = self.channels
            if out.shape[0] not in (c, 2 * c):
                raise ValueError(
                    f"SplitMcOutputd: {key!r} has {out.shape[0]} channels; expected {c} "
                    f"(probabilities) or {2 * c} (MC mean probability + mean entropy)."
                )
            d[f"{self.prefix}prob"] = out[:c]
            if out.shape[0] == 2 * c:
                entropy, mi = predictive_uncertainty(out[None, :c], out[None, c:])
                d[f"{self.prefix}entropy"] = out[c:].clone().copy_(entropy[0])
                d[f"{self.prefix}mi"] = out[c:].clone().copy_(mi[0])
        return d

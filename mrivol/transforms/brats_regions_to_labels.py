"""Turn the three overlapping BraTS region masks back into a BraTS label map."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

__all__ = ["BratsRegionsToLabels", "BratsRegionsToLabelsd"]


class BratsRegionsToLabels(Transform):
    """Inverse of MONAI's ``ConvertToMultiChannelBasedOnBratsClasses``.

    Channels (TC, WT, ET) become one label channel: whole tumour outside the core is oedema
    (2), core outside the enhancing part is necrosis (1), enhancing tumour is ``et_label``.
    Nesting is enforced in that order, so a voxel predicted ET but not WT is still ET: the
    sub-regions overwrite their parents, as in the BraTS label definition.

    Args:
        et_label: label of the enhancing tumour, 4 (BraTS 2018-2022) or 3 (BraTS 2023).

    Examples:
        >>> regions = np.zeros((3, 2, 1, 1), dtype=bool); regions[:, 0] = True
        >>> BratsRegionsToLabels()(regions)[0, :, 0, 0].tolist()
        [4, 0]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, *, et_label: int = 4) -> None:
        if et_label not in (3, 4):
            raise ValueError(
                f"et_label must be 4 (BraTS 2018-2022) or 3 (BraTS 2023), got {et_label}"
            )
        self.et_label = et_label

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Args: img: (3, H, W, D) binary TC, WT, ET masks. Returns: (1, H, W, D) labels."""
        if img.shape[0] != 3:
            raise ValueError(
                f"expected 3 region channels (TC, WT, ET), got shape {tuple(img.shape)}"
            )
        tc, wt, et = (img[i] > 0.5 for i in range(3))
        if isinstance(img, torch.Tensor):
            out = torch.zeros_like(img[:1], dtype=torch.uint8)
        else:
            out = np.zeros_like(img[:1], dtype=np.uint8)
        out[0][wt] = 2
        out[0][tc] = 1
        out[0][et] = self.et_label
        return out


class BratsRegionsToLabelsd(MapTransform):
    """Dictionary wrapper of :class:`BratsRegionsToLabels` (metadata of the input is kept)."""

    backend = BratsRegionsToLabels.backend

    def __init__(
        self, keys: KeysCollection, *, et_label: int = 4, allow_missing_keys: bool = False
    ):
        super().__init__(keys, allow_missing_keys)
        self.converter = BratsRegionsToLabels(et_label=et_label)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d

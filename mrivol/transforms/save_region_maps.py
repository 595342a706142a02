"""Write per-region probability / uncertainty maps as one 3D NIfTI per case, map and region.

MONAI's ``SaveImaged`` writes one file per key (a 4D file for a multi-channel map) with one
postfix per transform instance; BraTS tooling and the QU-BraTS evaluation expect one 3D map
per region, so this thin transform splits the channels and names the files
``<case>_<key>_<region>.nii.gz`` (e.g. ``BraTS2021_00000_entropy_wt.nii.gz``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from mrivol.io import atomic_path, case_output_name

__all__ = ["SaveRegionMapsd", "region_map_path"]


def region_map_path(out_dir: str | Path, case: str, kind: str, region: str) -> Path:
    """Where :class:`SaveRegionMapsd` writes map ``kind`` of ``region`` for ``case``.

    Examples:
        >>> region_map_path("out", "case1", "entropy", "WT").as_posix()
        'out/case1_entropy_wt.nii.gz'
    """
    return Path(out_dir) / f"{case}_{kind}_{region.lower()}.nii.gz"


class SaveRegionMapsd(MapTransform):
    """Save each channel of ``keys`` as ``<case>_<key>_<region>.nii.gz`` (float32), atomically.

    The affine is the tensor's own (``MetaTensor.affine``), so maps inverted to the input's
    space with ``Invertd`` land exactly on the input grid. The case id is ``data["case_id"]``
    when present, else the first input file's name (as for the label maps).

    Args:
        keys: maps of shape (C, H, W, D), one channel per region.
        regions: region names in channel order (``["tc", "wt", "et"]``).
        output_dir: destination folder.
        allow_missing_keys: skip keys that are absent (e.g. ``entropy`` when T = 1).
    """

    def __init__(
        self,
        keys: KeysCollection,
        *,
        regions: Sequence[str],
        output_dir: str | Path,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.regions = [str(r) for r in regions]
        self.output_dir = Path(output_dir)

    def _case(self, d: Mapping[Hashable, Any], value: Any) -> str:
        if d.get("case_id"):
            return str(d["case_id"])
        return case_output_name(getattr(value, "meta", {}), None)["subject"]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if value.shape[0] != len(self.regions):
                raise ValueError(
                    f"SaveRegionMapsd: {key!r} has {value.shape[0]} channels but "
                    f"{len(self.regions)} regions {self.regions} were given."
                )
            affine = np.asarray(
                value.affine if hasattr(value, "affine") else np.eye(4), dtype=np.float64
            )
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
            case = self._case(d, value)
            for channel, region in enumerate(self.regions):
                path = region_map_path(self.output_dir, case, str(key), region)
                image = nib.Nifti1Image(np.asarray(array[channel], dtype=np.float32), affine)
                image.set_qform(affine, code=1)
                image.set_sform(affine, code=1)
                with atomic_path(path, suffix=".nii.gz") as tmp:
                    nib.save(image, tmp)
        return d

"""Save one case's label map and region maps atomically, optionally in the background.

Replaces MONAI's ``SaveImaged`` in the bundle's inference: the maps go into one 3D file per
region (BraTS tooling expects that, ``SaveImaged`` writes one 4D file per key), and
``SaveImaged`` writes straight to the final name, so a killed run could leave a truncated
``<case>_seg.nii.gz`` that a resumed run would take for finished. Here every file goes
through a temporary name and a rename (:func:`mrivol.io.atomic_path`) and the label map is
written last, so a present label map means a complete case
(:func:`case_outputs` lists what a complete case has).

Probability and uncertainty maps (all in [0, 1]: probabilities, and binary entropy and mutual
information in nats, at most ln 2) are float32, or with ``prob_dtype="uint16"`` 16-bit
integers with the NIfTI scale factor 1/65535 (half the size, error below 1e-5; nibabel and
ITK apply the scale on load). NIfTI-1 has no float16 data type, so this is the 16-bit
encoding that every NIfTI reader understands (as ``mrivol cv`` stores its OOF probabilities
in uint8, scale 1/255).
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

from mrivol.inference.background_writer import BackgroundWriter
from mrivol.io import atomic_path, case_output_name

__all__ = [
    "MAP_KINDS",
    "PROB_DTYPES",
    "SaveCaseOutputsd",
    "case_outputs",
    "encode_map",
    "label_map_path",
    "region_map_path",
    "save_nifti_atomic",
]

PROB_DTYPES = ("float32", "uint16")
MAP_KINDS = ("prob", "entropy", "mi")
UINT16_SCALE = 1.0 / 65535.0


def region_map_path(out_dir: str | Path, case: str, kind: str, region: str) -> Path:
    """``<out_dir>/<case>_<kind>_<region>.nii.gz``: one 3D map per region, as BraTS tooling and
    the QU-BraTS evaluation expect.

    Examples:
        >>> region_map_path("out", "case1", "entropy", "WT").as_posix()
        'out/case1_entropy_wt.nii.gz'
    """
    return Path(out_dir) / f"{case}_{kind}_{region.lower()}.nii.gz"


def label_map_path(out_dir: str | Path, case: str) -> Path:
    """``<out_dir>/<case>_seg.nii.gz``."""
    return Path(out_dir) / f"{case}_seg.nii.gz"


def case_outputs(
    out_dir: str | Path, case: str, *, regions: Sequence[str], uncertainty: bool
) -> list[Path]:
    """The files of a complete case, the label map last (the order they are written in).

    Examples:
        >>> [p.name for p in case_outputs("out", "c1", regions=["wt"], uncertainty=True)]
        ['c1_prob_wt.nii.gz', 'c1_entropy_wt.nii.gz', 'c1_mi_wt.nii.gz', 'c1_seg.nii.gz']
    """
    kinds = MAP_KINDS if uncertainty else MAP_KINDS[:1]
    maps = [region_map_path(out_dir, case, k, r) for k in kinds for r in regions]
    return [*maps, label_map_path(out_dir, case)]


def encode_map(array: np.ndarray, affine: np.ndarray, *, dtype: str) -> nib.Nifti1Image:
    """A [0, 1] map as a NIfTI image of ``dtype`` (float32, or uint16 with scale 1/65535).

    Examples:
        >>> img = encode_map(np.array([[[0.0, 0.25, 1.0]]]), np.eye(4), dtype="uint16")
        >>> img.get_data_dtype().name, np.asarray(img.dataobj).tolist()  # readers scale by 1/65535
        ('uint16', [[[0, 16384, 65535]]])

    Raises:
        ValueError: ``dtype`` is not one of :data:`PROB_DTYPES`.
    """
    if dtype == "float32":
        image = nib.Nifti1Image(np.asarray(array, dtype=np.float32), affine)
    elif dtype == "uint16":
        q = np.rint(np.clip(array, 0.0, 1.0) / UINT16_SCALE).astype(np.uint16)
        image = nib.Nifti1Image(q, affine)
        image.header.set_slope_inter(UINT16_SCALE, 0.0)
    else:
        raise ValueError(f"prob_dtype must be one of {PROB_DTYPES}, got {dtype!r}")
    return image


def save_nifti_atomic(image: nib.Nifti1Image, affine: np.ndarray, path: Path) -> None:
    """Save ``image`` with ``affine`` as its qform and sform, atomically."""
    image.set_qform(affine, code=1)  # as MONAI's NibabelWriter (ITK reads the qform)
    image.set_sform(affine, code=1)
    with atomic_path(path, suffix=".nii.gz") as tmp:
        nib.save(image, tmp)


def _numpy(value: Any) -> tuple[np.ndarray, np.ndarray]:
    """A (C, H, W, D) map as an owned numpy array and its affine (float64, 4x4)."""
    affine = np.asarray(getattr(value, "affine", np.eye(4)), dtype=np.float64)
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
    return np.array(array, copy=True), affine  # a copy: the engine may reuse its buffers


def write_case(
    case: str,
    label: tuple[np.ndarray, np.ndarray],
    maps: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    regions: Sequence[str],
    output_dir: Path,
    prob_dtype: str,
) -> Path:
    """Write one case: every map of ``maps`` per region, then the uint8 label map."""
    for kind, (array, affine) in maps.items():
        for channel, region in enumerate(regions):
            image = encode_map(array[channel], affine, dtype=prob_dtype)
            save_nifti_atomic(image, affine, region_map_path(output_dir, case, kind, region))
    array, affine = label
    path = label_map_path(output_dir, case)
    save_nifti_atomic(nib.Nifti1Image(np.asarray(array[0]).astype(np.uint8), affine), affine, path)
    return path


class SaveCaseOutputsd(MapTransform):
    """Save ``<case>_seg.nii.gz`` and ``<case>_<map>_<region>.nii.gz``, atomically, label last.

    The affine is each tensor's own (``MetaTensor.affine``), so maps inverted with ``Invertd``
    land on the input grid. The case id is ``data["case_id"]`` when present, else the first
    input file's name without its modality suffix (:func:`mrivol.io.case_output_name`).

    Args:
        keys: region maps of shape (C, H, W, D), one channel per region (``prob``,
            ``entropy``, ``mi``).
        label_key: the label map, (1, H, W, D), written as uint8.
        regions: region names in channel order (``["tc", "wt", "et"]``).
        output_dir: destination folder.
        prob_dtype: ``float32`` or ``uint16`` (scale 1/65535) for the region maps.
        writer: background writer; ``None`` writes in the calling thread.
        allow_missing_keys: skip absent map keys (``entropy``, ``mi`` when T = 1).

    Raises:
        ValueError: unknown ``prob_dtype``; at call time, a map whose channels do not match
            ``regions``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        *,
        label_key: str = "pred",
        regions: Sequence[str],
        output_dir: str | Path,
        prob_dtype: str = "float32",
        writer: BackgroundWriter | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if prob_dtype not in PROB_DTYPES:
            raise ValueError(f"prob_dtype must be one of {PROB_DTYPES}, got {prob_dtype!r}")
        self.label_key = label_key
        self.regions = [str(r).lower() for r in regions]
        self.output_dir = Path(output_dir)
        self.prob_dtype = prob_dtype
        self.writer = writer if writer is not None else BackgroundWriter(workers=0)

    def _case(self, d: Mapping[Hashable, Any]) -> str:
        if d.get("case_id"):
            return str(d["case_id"])
        return case_output_name(getattr(d[self.label_key], "meta", {}), None)["subject"]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        case = self._case(d)
        maps = {}
        for key in self.key_iterator(d):
            if d[key].shape[0] != len(self.regions):
                raise ValueError(
                    f"SaveCaseOutputsd, case {case}: {key!r} has {d[key].shape[0]} channels "
                    f"but {len(self.regions)} regions {self.regions} were given."
                )
            maps[str(key)] = _numpy(d[key])
        self.writer.submit(
            case,
            write_case,
            case,
            _numpy(d[self.label_key]),
            maps,
            regions=self.regions,
            output_dir=self.output_dir,
            prob_dtype=self.prob_dtype,
        )
        if self.writer.workers == 0:
            self.writer.wait()  # synchronous: raise a write error at once
        return d

"""Preprocess one manifest case: load safely, run the steps, score against truth, save.

Loading never trusts SimpleITK: every file is read with nibabel after the whole gzip stream is
decompressed (truncation and CRC errors raise), then checked for 3D, NaN/Inf, an all-zero or
constant image and qform/sform agreement (``mrivol.data.manifest_check``). Every problem raises
:class:`CaseError` naming the case, the file and the problem. The steps are the mrivol
dictionary transforms plus MONAI's ``Orientationd``, ``Spacingd`` and ``NormalizeIntensityd``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, NormalizeIntensityd, Orientationd, Spacingd

from mrivol.data.layout import BRATS_MODALITIES
from mrivol.data.nifti import affine_mismatch, load_nifti_verified
from mrivol.data.volume_checks import volume_problems
from mrivol.preprocessing import qc
from mrivol.transforms.co_register import CoRegisterd
from mrivol.transforms.n4_bias_field import N4BiasFieldCorrectiond
from mrivol.transforms.register_to_template import RegisterToTemplated
from mrivol.transforms.skull_strip import SkullStripd

__all__ = ["STEP_ORDER", "CaseError", "build_step", "load_case", "run_case", "save_case"]

#: The steps in the order they always run (``--steps`` selects, never reorders).
STEP_ORDER: tuple[str, ...] = ("coregister", "skullstrip", "n4", "resample", "mni", "normalize")
MASK_KEY = "brain_mask"


class CaseError(RuntimeError):
    """A case cannot be preprocessed; ``case``, ``file`` and ``problem`` say why."""

    def __init__(self, case: str, file: str, problem: str) -> None:
        super().__init__(f"case {case}: {file}: {problem}")
        self.case, self.file, self.problem = case, file, problem


def _meta_tensor(array: np.ndarray, affine: np.ndarray, path: str) -> MetaTensor:
    return MetaTensor(
        torch.from_numpy(np.ascontiguousarray(array)[None]),
        affine=torch.as_tensor(affine, dtype=torch.float64),
        meta={"filename_or_obj": path},
    )


def load_volume(
    path: str,
    *,
    case: str,
    column: str,
    label: bool = False,
    label_values: Collection[int] | None = None,
) -> MetaTensor:
    """Read and check one NIfTI volume; return it as a (1, H, W, D) MetaTensor.

    Raises:
        CaseError: missing, truncated or unreadable file; not 3D; any problem of
            :func:`mrivol.data.volume_checks.volume_problems` (NaN/Inf voxels, a constant
            image, non-integer label values or labels outside ``label_values``); qform and
            sform disagreeing.
    """

    def fail(problem: str) -> CaseError:
        return CaseError(case, path, f"{column}: {problem}")

    if not os.path.isfile(path):
        raise fail("file not found (missing modality?)")
    try:
        img, data = load_nifti_verified(path)
    except EOFError as e:
        raise fail(f"truncated file ({e}); re-copy or re-download it") from e
    except Exception as e:
        raise fail(f"cannot be read, corrupted? ({type(e).__name__}: {e})") from e
    if img.ndim != 3:
        raise fail(f"{img.ndim}D image of shape {img.shape}; expected one 3D volume")
    problems = volume_problems(data, label=label, label_values=label_values)
    if problems:
        raise fail("; ".join(problems))
    data = np.asarray(data, dtype=np.uint8 if label else np.float32)
    qform, qcode = img.header.get_qform(coded=True)
    sform, scode = img.header.get_sform(coded=True)
    if qcode and scode and (diff := affine_mismatch(qform, sform, atol_mm=1e-3, atol_rot=1e-4)):
        raise fail(f"qform and sform disagree ({diff}); set both to the same affine")
    return _meta_tensor(data, np.asarray(img.affine, dtype=np.float64), path)


def load_case(
    row: dict[str, str], *, images: tuple[str, ...], label: str | None, reference: str,
    steps: tuple[str, ...], label_values: Collection[int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Load every image (and the label map) of a manifest row, checking the grids.

    The label map must share the reference's grid; the other modalities may differ from it
    only when ``coregister`` is among ``steps``.

    Raises:
        CaseError: naming the first broken file of the case.
    """
    case = row["case_id"]
    data: dict[str, Any] = {"case_id": case}
    for col in images:
        data[col] = load_volume(row[col], case=case, column=col)
    if label:
        data[label] = load_volume(
            row[label], case=case, column=label, label=True, label_values=label_values
        )
    ref = data[reference]
    for col in (*images, *((label,) if label else ())):
        if col == reference:
            continue
        same_shape = tuple(data[col].shape) == tuple(ref.shape)
        diff = "" if not same_shape else affine_mismatch(
            data[col].affine.numpy(), ref.affine.numpy(), atol_mm=1e-3, atol_rot=1e-4
        )  # fmt: skip
        if same_shape and not diff:
            continue
        what = (
            f"shape {tuple(data[col].shape[1:])} vs {tuple(ref.shape[1:])}"
            if not same_shape
            else diff
        )
        if col == label or "coregister" not in steps:
            raise CaseError(
                case, row[col],
                f"{col}: grid differs from {reference} ({what}); "
                + ("a label map must be on the reference grid" if col == label
                   else "co-register the modalities (add the coregister step)"),
            )  # fmt: skip
    return data


def build_step(
    step: str, config: dict, *, images: tuple[str, ...], label: str | None, reference: str
):  # fmt: skip
    """Return the dictionary transform of one step, parameterised by ``config[step]``.

    Raises:
        ValueError: on an unknown step name.
    """
    params = dict(config.get(step) or {})
    labels = [k for k in (label, MASK_KEY) if k]
    if step == "coregister":
        return CoRegisterd(keys=list(images), ref_key=reference, **params)
    if step == "skullstrip":
        params.pop("mask_file", None)
        return SkullStripd(keys=list(images), ref_key=reference, mask_key=MASK_KEY, **params)
    if step == "n4":
        return N4BiasFieldCorrectiond(keys=list(images), mask_key=MASK_KEY, **params)
    if step == "resample":
        keys = [*images, *labels]
        modes = ["bilinear"] * len(images) + ["nearest"] * len(labels)
        return Compose([
            Orientationd(keys=keys, axcodes=params.get("axcodes", "RAS"), allow_missing_keys=True,
                         labels=(("L", "R"), ("P", "A"), ("I", "S"))),
            Spacingd(keys=keys, pixdim=params.get("pixdim", (1.0, 1.0, 1.0)), mode=modes,
                     allow_missing_keys=True),
        ])  # fmt: skip
    if step == "mni":
        return RegisterToTemplated(
            keys=[*images, *labels], ref_key=reference, mask_key=MASK_KEY, label_keys=labels,
            allow_missing_keys=True, **params,
        )  # fmt: skip
    if step == "normalize":
        return NormalizeIntensityd(keys=list(images), **params)
    raise ValueError(f"unknown preprocessing step {step!r}; known steps: {list(STEP_ORDER)}")


def _given_mask(row: dict, data: dict, config: dict, reference: str) -> None:
    """Put the mask of ``skullstrip.backend: mask`` into ``data`` (file pattern or nonzero)."""
    source = (config.get("skullstrip") or {}).get("mask_file", "nonzero")
    ref = data[reference]
    if source == "nonzero":  # already skull-stripped data (BraTS): the non-zero voxels
        data[MASK_KEY] = MetaTensor((ref > 0).to(torch.uint8), meta=dict(ref.meta))
        return
    case_dir = os.path.dirname(row[reference])
    path = source.format(case=row["case_id"], case_dir=case_dir)
    data[MASK_KEY] = load_volume(path, case=row["case_id"], column="mask_file", label=True)


@dataclass
class CaseResult:
    """What :func:`run_case` produced: the final data and one QC row per step."""

    data: dict[str, Any]
    rows: list[dict[str, Any]]
    raw_reference: MetaTensor


def run_case(
    row: dict[str, str], *, images: tuple[str, ...], label: str | None, steps: tuple[str, ...],
    config: dict, label_values: Collection[int] | None = None,
) -> CaseResult:  # fmt: skip
    """Load a case and run ``steps`` (in :data:`STEP_ORDER`), timing and scoring each.

    Raises:
        CaseError: on a broken input file or a failing step (named in the problem).
    """
    case, reference = row["case_id"], config.get("reference", images[0])
    if reference not in images and len(images) == len(BRATS_MODALITIES):
        # the same channel under the other BraTS names (t1 -> t1n for a brats2023 manifest)
        reference = dict(zip(BRATS_MODALITIES, images, strict=True)).get(reference, reference)
    if reference not in images:
        raise CaseError(case, "", f"reference {reference!r} is none of the images {images}")
    t0 = time.perf_counter()
    data = load_case(row, images=images, label=label, reference=reference, steps=steps,
                     label_values=label_values)  # fmt: skip
    rows = [{"case_id": case, "step": "load", "seconds": round(time.perf_counter() - t0, 3)}]
    truth = qc.load_truth(row[reference], case)
    raw = {k: data[k] for k in images}
    if "skullstrip" in steps and (config.get("skullstrip") or {}).get("backend") == "mask":
        _given_mask(row, data, config, reference)
    for step in (s for s in STEP_ORDER if s in steps):
        transform = build_step(step, config, images=images, label=label, reference=reference)
        before = data
        t0 = time.perf_counter()
        try:
            data = transform(data)
        except CaseError:
            raise
        except Exception as e:
            raise CaseError(case, row[reference], f"step {step}: {type(e).__name__}: {e}") from e
        seconds = time.perf_counter() - t0
        scores = qc.step_scores(step, before, data, raw=raw, truth=truth, images=images,
                                label=label, reference=reference)  # fmt: skip
        rows.append({"case_id": case, "step": step, "seconds": round(seconds, 3), **scores})
    return CaseResult(data=data, rows=rows, raw_reference=raw[reference])


def _save_nifti(tensor: torch.Tensor, path: Path, *, dtype: type) -> None:
    affine = np.asarray(tensor.affine, dtype=np.float64)
    arr = tensor[0].detach().cpu().numpy()
    arr = np.rint(arr).astype(dtype) if np.issubdtype(dtype, np.integer) else arr.astype(dtype)
    img = nib.Nifti1Image(arr, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    nib.save(img, path)


def save_case(result: CaseResult, case_dir: Path, *, case: str, images: tuple[str, ...],
              label: str | None, png: bool) -> dict[str, str]:  # fmt: skip
    """Write the case's NIfTI files (and QC PNG) into ``case_dir`` (a fresh temporary folder).

    Returns:
        ``{column: file name}`` of what was written.
    """
    files: dict[str, str] = {}
    for key in images:
        files[key] = f"{case}_{key}.nii.gz"
        _save_nifti(result.data[key], case_dir / files[key], dtype=np.float32)
    for key in (label, MASK_KEY):
        if key and key in result.data:
            files[key] = f"{case}_{'brainmask' if key == MASK_KEY else key}.nii.gz"
            _save_nifti(result.data[key], case_dir / files[key], dtype=np.uint8)
    if png:
        files["qc_png"] = f"{case}_qc.png"
        qc.save_qc_png(result.raw_reference, result.data, images=images, mask_key=MASK_KEY,
                       path=case_dir / files["qc_png"], title=case)  # fmt: skip
    (case_dir / f"{case}_steps.json").write_text(json.dumps(result.rows, indent=1))
    return files

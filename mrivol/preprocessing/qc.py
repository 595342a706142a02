"""Quality scores of the preprocessing steps, and one QC picture per case.

Scores need the phantom truth (``<case_dir>/truth/``, see :mod:`mrivol.synth.phantoms`) except
the resampling checks, which compare the label map before and after:

==========  ================================================================================
step        scores
==========  ================================================================================
coregister  ``coreg_error_mm``: mean displacement of the true brain under the estimated
            transform (the phantom modalities are aligned, so the truth is the identity);
            worst modality
skullstrip  ``dice``: brain-mask Dice against the truth mask; ``brain_ml``: mask volume
n4          ``wm_cov``, ``wm_cov_biasfree``: coefficient of variation of white matter (truth
            tissue 3) in the corrected reference image and in ``image / true bias``;
            ``wm_cov_ratio``: worst modality's ratio of the two
resample    ``label_volume_ratio`` (tumour mm^3 after / before), ``centroid_shift_mm`` (world
            tumour centroid), ``voxel_mm`` (largest output spacing)
mni         ``mni_error_mm``: mean distance over the MNI brain between the estimated and the
            true MNI -> case mapping (``truth/<case>_pose.json``)
==========  ================================================================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from mrivol.metrics.segmentation import dice_score

__all__ = ["cov", "load_truth", "save_qc_png", "step_scores", "world_points"]


def load_truth(reference_path: str, case: str) -> dict[str, Any] | None:
    """Phantom truth next to a case's reference image, or ``None`` when there is none."""
    truth_dir = Path(reference_path).parent / "truth"
    mask = truth_dir / f"{case}_brainmask.nii.gz"
    if not mask.is_file():
        return None
    out: dict[str, Any] = {"dir": truth_dir, "case": case}
    img = nib.load(mask)
    out["affine"] = np.asarray(img.affine)
    out["brainmask"] = np.asarray(img.dataobj) > 0
    tissue = truth_dir / f"{case}_tissue.nii.gz"
    out["tissue"] = np.asarray(nib.load(tissue).dataobj) if tissue.is_file() else None
    pose = truth_dir / f"{case}_pose.json"
    out["pose"] = json.loads(pose.read_text()) if pose.is_file() else None
    return out


def _bias(truth: dict, modality: str) -> np.ndarray | None:
    path = truth["dir"] / f"{truth['case']}_bias_{modality}.nii.gz"
    return np.asarray(nib.load(path).dataobj, dtype=np.float32) if path.is_file() else None


def cov(values: np.ndarray) -> float:
    """Coefficient of variation, std / mean."""
    return float(np.std(values) / np.mean(values))


def world_points(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World (RAS mm) coordinates (N, 3) of the voxels of a 3D mask."""
    ijk = np.argwhere(mask)
    return ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def _apply(matrix: Any, xyz: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    return xyz @ m[:3, :3].T + m[:3, 3]


def _np(t: torch.Tensor) -> np.ndarray:
    return t[0].detach().cpu().numpy()


def _same_grid(t: torch.Tensor, truth: dict) -> bool:
    return tuple(t.shape[1:]) == truth["brainmask"].shape and np.allclose(
        np.asarray(t.affine), truth["affine"], atol=1e-3
    )


def step_scores(
    step: str, before: dict, after: dict, *, raw: dict, truth: dict | None,
    images: tuple[str, ...], label: str | None, reference: str,
) -> dict[str, float]:  # fmt: skip
    """Scores of one step (see the module table); empty when nothing can be scored."""
    ref = after[reference]
    if step == "resample" and label and label in after:
        vol = [
            (_np(d[label]) > 0, np.asarray(d[label].affine, dtype=np.float64))
            for d in (before, after)
        ]
        if not vol[0][0].any():
            return {}
        mm3 = [m.sum() * abs(np.linalg.det(a[:3, :3])) for m, a in vol]
        cen = [world_points(m, a).mean(0) for m, a in vol]
        return {
            "label_volume_ratio": round(float(mm3[1] / mm3[0]), 5),
            "centroid_shift_mm": round(float(np.linalg.norm(cen[1] - cen[0])), 4),
            "voxel_mm": round(float(np.linalg.norm(vol[1][1][:3, :3], axis=0).max()), 4),
        }
    if truth is None:
        if step == "skullstrip" and "brain_mask" in after:
            m = after["brain_mask"]
            ml = _np(m).sum() * abs(np.linalg.det(np.asarray(m.affine)[:3, :3])) / 1000
            return {"brain_ml": round(float(ml), 1)}
        return {}
    brain = truth["brainmask"]
    if step == "coregister" and _same_grid(ref, truth):
        xyz = world_points(brain, truth["affine"])
        errors = [
            float(np.linalg.norm(_apply(after[k].meta["coregister"]["matrix_ras"], xyz) - xyz,
                                 axis=1).mean())
            for k in images if k != reference and "coregister" in after[k].meta
        ]  # fmt: skip
        return {"coreg_error_mm": round(max(errors), 4)} if errors else {}
    if step == "skullstrip" and _same_grid(ref, truth):
        mask = _np(after["brain_mask"]) > 0
        voxel_ml = abs(np.linalg.det(truth["affine"][:3, :3])) / 1000
        return {
            "dice": round(dice_score(mask, brain), 4),
            "brain_ml": round(float(mask.sum() * voxel_ml), 1),
        }
    if step == "n4" and truth["tissue"] is not None and _same_grid(ref, truth):
        wm = truth["tissue"] == 3
        out: dict[str, float] = {}
        ratios = []
        for k in images:
            bias = _bias(truth, k)
            if bias is None or tuple(raw[k].shape[1:]) != wm.shape:
                continue
            free = cov((_np(raw[k]) / bias)[wm])
            corrected = cov(_np(after[k])[wm])
            ratios.append(corrected / free)
            if k == reference:
                out.update(wm_cov=round(corrected, 5), wm_cov_biasfree=round(free, 5),
                           wm_cov_raw=round(cov(_np(raw[k])[wm]), 5))  # fmt: skip
        if ratios:
            out["wm_cov_ratio"] = round(max(ratios), 4)
        return out
    if step == "mni" and truth["pose"] is not None and "mni" in ref.meta:
        from nilearn import datasets

        mni_mask = datasets.load_mni152_brain_mask(resolution=2)
        xyz = world_points(np.asarray(mni_mask.dataobj) > 0, mni_mask.affine)
        est = _apply(ref.meta["mni"]["matrix_ras"], xyz)
        true = _apply(truth["pose"]["mni_to_case_world"], xyz)
        return {"mni_error_mm": round(float(np.linalg.norm(est - true, axis=1).mean()), 4)}
    return {}


def _mid_slice(vol: np.ndarray, mask: np.ndarray | None) -> int:
    fg = mask if mask is not None and mask.any() else vol > np.percentile(vol, 50)
    zs = np.nonzero(fg.any(axis=(0, 1)))[0]
    return int(zs.mean()) if zs.size else vol.shape[2] // 2


def save_qc_png(
    raw_reference: torch.Tensor, data: dict, *, images: tuple[str, ...], mask_key: str,
    path: str | os.PathLike, title: str,
) -> None:  # fmt: skip
    """Mid axial slices: the raw reference, then every processed modality with the mask outline.

    Images are shown in their voxel grids (RAS after the resample step), rotated so that
    anterior is up.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask = _np(data[mask_key]) > 0 if mask_key in data else None
    panels = [("raw " + images[0], _np(raw_reference), None)]
    panels += [(k, _np(data[k]), mask) for k in images]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
    for ax, (name, vol, m) in zip(np.atleast_1d(axes), panels, strict=True):
        z = _mid_slice(vol, m if m is not None and m.shape == vol.shape else None)
        lo, hi = np.percentile(vol, (1, 99.5))
        ax.imshow(vol[:, :, z].T, cmap="gray", origin="lower", vmin=lo, vmax=hi)
        if m is not None and m.shape == vol.shape:
            ax.contour(m[:, :, z].T.astype(float), levels=[0.5], colors="r", linewidths=0.7)
        ax.set_title(f"{name} z={z}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

"""Dataset fingerprint for the nnU-Net-style planner: spacings, cropped shapes, intensities."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = ["FingerprintError", "compute_fingerprint"]


class FingerprintError(ValueError):
    """Raised when one or more cases cannot be fingerprinted; the message lists every case."""


def _case_name(case: dict[str, str], index: int) -> str:
    for key in ("case_id", "subject", "id", "name"):
        if case.get(key):
            return str(case[key])
    return f"case #{index}"


def _load(path: str, what: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """Load a 3D NIfTI volume (a trailing singleton 4th axis is dropped) and its spacing."""
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{what} {path}: expected a 3D volume, got shape {data.shape}.")
    return data, tuple(float(z) for z in img.header.get_zooms()[:3])


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the bounding box of ``mask``; the whole volume if the mask is empty."""
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    coords = np.nonzero(mask)
    return tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)


def _case_fingerprint(
    case: dict[str, str],
    image_keys: Sequence[str],
    label_key: str | None,
    samples_per_case: int,
    seed: int,
) -> dict[str, Any]:
    """Fingerprint of one case (see :func:`compute_fingerprint`)."""
    channels, spacing = [], None
    for key in image_keys:
        if key not in case or not case[key]:
            raise ValueError(f"no path for image key {key!r}; keys present: {sorted(case)}.")
        data, sp = _load(case[key], f"image {key!r}")
        if channels and data.shape != channels[0].shape:
            raise ValueError(
                f"image {key!r} {case[key]} has shape {data.shape}, but {image_keys[0]!r} has "
                f"{channels[0].shape}; co-register / resample the modalities first."
            )
        if spacing is not None and not np.allclose(sp, spacing, rtol=1e-3):
            raise ValueError(
                f"image {key!r} {case[key]} has spacing {sp}, but {image_keys[0]!r} has "
                f"{spacing}; resample the modalities to one grid first."
            )
        channels.append(data)
        spacing = spacing or sp
    image = np.stack(channels)  # (C, X, Y, Z)
    # nnU-Net's crop_to_nonzero: union of non-zero voxels over channels, holes filled
    nonzero = ndimage.binary_fill_holes(np.any(image != 0, axis=0))
    box = _bounding_box(nonzero)
    cropped = image[(slice(None), *box)]
    foreground = nonzero[box]
    labels: list[int] = []
    if label_key is not None:
        if not case.get(label_key):
            raise ValueError(f"no path for label key {label_key!r}.")
        seg, _ = _load(case[label_key], f"label {label_key!r}")
        if seg.shape != image.shape[1:]:
            raise ValueError(
                f"label {case[label_key]} has shape {seg.shape}, images have {image.shape[1:]}."
            )
        labels = [int(v) for v in np.unique(seg)]
        foreground = seg[box] > 0
    rng = np.random.default_rng(seed)
    fg_index = np.flatnonzero(foreground)
    if fg_index.size > samples_per_case:
        fg_index = rng.choice(fg_index, size=samples_per_case, replace=False)
    samples = cropped.reshape(cropped.shape[0], -1)[:, fg_index]
    return {
        "spacing": [float(s) for s in spacing],
        "shape_before_crop": [int(n) for n in image.shape[1:]],
        "shape_after_crop": [int(n) for n in cropped.shape[1:]],
        "relative_size_after_cropping": float(cropped[0].size / image[0].size),
        "labels": labels,
        "samples": samples,
    }


def _stats(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {k: float("nan") for k in ("mean", "median", "std", "min", "max")} | {
            "percentile_00_5": float("nan"),
            "percentile_99_5": float("nan"),
        }
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "std": float(np.std(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "percentile_00_5": float(np.percentile(values, 0.5)),
        "percentile_99_5": float(np.percentile(values, 99.5)),
    }


def compute_fingerprint(
    cases: Sequence[dict[str, str]],
    *,
    image_keys: Sequence[str],
    label_key: str | None = None,
    samples_per_case: int = 10_000,
    seed: int = 1234,
    num_workers: int = 1,
) -> dict[str, Any]:
    """Compute an nnU-Net v2 style dataset fingerprint from NIfTI files.

    Per case: voxel spacing (NIfTI ``pixdim``, in array axis order), shape before and after
    cropping to the non-zero region (union over channels, holes filled, as nnU-Net's
    ``crop_to_nonzero``), and up to ``samples_per_case`` foreground intensities per channel
    (foreground = label > 0 when ``label_key`` is given, else the non-zero region). Over the
    dataset: per channel mean, median, std, min, max and 0.5 / 99.5 percentiles of the pooled
    samples; the median relative size after cropping (nnU-Net normalises within the non-zero
    mask when it is below 3/4).

    Reference: nnU-Net v2 ``nnunetv2/experiment_planning/dataset_fingerprint/
    fingerprint_extractor.py`` (Isensee et al., Nature Methods 2021).

    Args:
        cases: one dict per case mapping keys to NIfTI paths (e.g. manifest rows); an optional
            ``case_id`` / ``subject`` entry names the case in error messages.
        image_keys: keys of the image channels, in channel order (e.g. t1, t1ce, t2, flair).
        label_key: key of the label map, or ``None``.
        samples_per_case: foreground voxels sampled per case (without replacement).
        seed: seed of the voxel sampling (case ``i`` uses ``seed + i``).
        num_workers: processes reading cases in parallel (1 = in this process).

    Returns:
        A JSON-serialisable dict: ``spacings``, ``shapes_before_crop``, ``shapes_after_crop``
        (lists per case), ``median_relative_size_after_cropping``,
        ``foreground_intensity_properties_per_channel`` (``{"0": {...}, ...}``),
        ``channel_names``, ``labels`` (union of label values), ``num_cases``,
        ``foreground_source`` (``"label"`` or ``"nonzero"``).

    Raises:
        ValueError: if ``cases`` or ``image_keys`` is empty.
        FingerprintError: after all cases were tried, if any failed (each failing case, its
            file and the reason are listed).

    Examples:
        >>> fp = compute_fingerprint(  # doctest: +SKIP
        ...     [{"case_id": "c1", "t1": "c1_t1.nii.gz", "seg": "c1_seg.nii.gz"}],
        ...     image_keys=["t1"], label_key="seg")
    """
    if not cases:
        raise ValueError("compute_fingerprint: no cases given; check the manifest / datalist.")
    if not image_keys:
        raise ValueError("compute_fingerprint: image_keys is empty; name the image columns.")
    keys = list(image_keys)
    args = [(c, keys, label_key, samples_per_case, seed + i) for i, c in enumerate(cases)]
    results: list[dict[str, Any] | None] = [None] * len(cases)
    failures: list[str] = []
    if num_workers > 1:
        with ProcessPoolExecutor(max_workers=num_workers) as pool:
            futures = [pool.submit(_case_fingerprint, *a) for a in args]
            for i, fut in enumerate(futures):
                try:
                    results[i] = fut.result()
                except Exception as err:  # collect, report all failures at the end
                    failures.append(f"{_case_name(cases[i], i)}: {type(err).__name__}: {err}")
    else:
        for i, a in enumerate(args):
            try:
                results[i] = _case_fingerprint(*a)
            except Exception as err:  # collect, report all failures at the end
                failures.append(f"{_case_name(cases[i], i)}: {type(err).__name__}: {err}")
    if failures:
        raise FingerprintError(
            f"compute_fingerprint: {len(failures)} of {len(cases)} cases failed; fix or remove "
            "them from the manifest:\n  " + "\n  ".join(failures)
        )
    ok = [r for r in results if r is not None]
    props = {
        str(c): _stats(np.concatenate([r["samples"][c] for r in ok]))
        for c in range(len(image_keys))
    }
    return {
        "channel_names": list(image_keys),
        "num_cases": len(ok),
        "spacings": [r["spacing"] for r in ok],
        "shapes_before_crop": [r["shape_before_crop"] for r in ok],
        "shapes_after_crop": [r["shape_after_crop"] for r in ok],
        "median_relative_size_after_cropping": float(
            np.median([r["relative_size_after_cropping"] for r in ok])
        ),
        "foreground_intensity_properties_per_channel": props,
        "labels": sorted({v for r in ok for v in r["labels"]}),
        "foreground_source": "label" if label_key is not None else "nonzero",
    }

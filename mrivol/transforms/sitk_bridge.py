"""Convert between MONAI arrays (RAS affine) and SimpleITK images (LPS direction and origin).

MONAI's ``MetaTensor.affine`` maps voxel indices ``(i, j, k)`` of a ``(C, H, W, D)`` tensor to
RAS world millimetres (as NIfTI does); SimpleITK stores spacing, an orthonormal direction
matrix and an origin in LPS, with the array axes reversed (``(k, j, i)``). These helpers do the
two flips in one place so that every SimpleITK-based transform keeps world coordinates exact.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from monai.data import MetaTensor
from monai.utils import convert_to_numpy

__all__ = ["LPS", "affine_of", "from_sitk", "resample_channels", "to_sitk", "with_array"]

#: RAS <-> LPS flip of world coordinates (its own inverse).
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_of(img: torch.Tensor | np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
    """Return the 4x4 RAS affine of ``img``: ``affine`` if given, else the MetaTensor's.

    Raises:
        ValueError: if neither is available (a plain array without ``affine=``).
    """
    if affine is not None:
        return np.asarray(affine, dtype=np.float64)
    if isinstance(img, MetaTensor):
        return np.asarray(img.affine, dtype=np.float64)
    raise ValueError("a plain array has no affine: pass a MetaTensor or affine=<4x4 RAS matrix>")


def to_sitk(array: np.ndarray | torch.Tensor, affine: np.ndarray) -> sitk.Image:
    """Wrap one 3D volume ``(H, W, D)`` with its RAS affine as a SimpleITK image.

    Raises:
        ValueError: if the array is not 3D or the affine is sheared (SimpleITK needs an
            orthonormal direction matrix: resample the image first).
    """
    arr = convert_to_numpy(array)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3D volume (H, W, D), got shape {arr.shape}")
    lps = LPS @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ValueError(
            "affine is sheared (non-orthonormal direction); SimpleITK cannot represent it: "
            "resample the image onto an unsheared grid first"
        )
    image = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def from_sitk(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(array (H, W, D), RAS affine)`` of a 3D SimpleITK image."""
    arr = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return arr, LPS @ lps


def with_array(
    like: torch.Tensor | np.ndarray, array: np.ndarray, affine: np.ndarray | None = None
) -> torch.Tensor | np.ndarray:
    """Return ``array`` as the type of ``like``; a MetaTensor keeps its meta (new ``affine``)."""
    if isinstance(like, MetaTensor):
        out = MetaTensor(torch.as_tensor(np.ascontiguousarray(array)), meta=dict(like.meta))
        if affine is not None:
            out.affine = torch.as_tensor(affine, dtype=torch.float64)
            out.meta["spatial_shape"] = np.asarray(array.shape[1:])
        return out
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(np.ascontiguousarray(array))
    return array


def resample_channels(
    array: np.ndarray,
    affine: np.ndarray,
    reference: sitk.Image,
    transform: sitk.Transform,
    interpolator: int = sitk.sitkLinear,
) -> np.ndarray:
    """Resample every channel of ``array`` (C, H, W, D; RAS ``affine``) onto ``reference``.

    ``transform`` maps reference (LPS) points to ``array``'s world, as a SimpleITK registration
    returns it; voxels outside ``array`` become 0. Returns float32 (C, *reference grid*).
    """
    return np.stack([
        from_sitk(sitk.Resample(to_sitk(array[c].astype(np.float32), affine), reference,
                                transform, interpolator, 0.0, sitk.sitkFloat32))[0]
        for c in range(array.shape[0])
    ])  # fmt: skip

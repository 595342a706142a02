"""BraTS-like MR contrasts, bias fields, Rician noise and vessels for the synthetic phantoms.

Relative intensities follow the usual appearance of the four BraTS sequences: T1 WM > GM > CSF
with bright scalp fat; T2 CSF brightest (CSF > GM > WM); FLAIR with suppressed CSF and bright
oedema; T1ce like T1 with an enhancing tumour rim and bright vessels (dural sinus, cortical
veins). The skull is dark everywhere.

References:
    Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)",
    IEEE TMI 34 (2015); Gudbjartsson & Patz, "The Rician distribution of noisy MRI data",
    MRM 34 (1995); Sled et al., "A nonparametric method for automatic correction of intensity
    nonuniformity in MRI data", IEEE TMI 17 (1998) (smooth multiplicative bias model).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi

from mrivol.data.layout import BRATS_MODALITIES
from mrivol.synth.mni import grid_world_axes, load_head_model

__all__ = [
    "CONTRAST_CLASSES",
    "MODALITIES",
    "base_contrasts",
    "bias_field",
    "jitter_contrasts",
    "rician_noise",
    "vessel_map",
]

#: The four BraTS sequences, in file order.
MODALITIES: tuple[str, ...] = BRATS_MODALITIES  # the channel order of the bundles

#: Columns of the contrast table: the head classes, then the tumour classes and vessels.
CONTRAST_CLASSES: tuple[str, ...] = (
    "background",
    "csf",
    "gm",
    "wm",
    "skull",
    "scalp",
    "necrosis",
    "enhancing",
    "oedema",
    "vessel",
)

# Relative signal per class (WM on T1 = 1). Rows follow MODALITIES, columns CONTRAST_CLASSES.
_BASE = np.array(
    [
        # bg   csf   gm    wm    skull scalp necro  ET    oed   vessel
        [0.0, 0.30, 0.68, 1.00, 0.07, 1.05, 0.30, 0.62, 0.60, 0.35],  # t1
        [0.0, 0.30, 0.70, 1.00, 0.07, 1.05, 0.28, 1.35, 0.62, 1.40],  # t1ce
        [0.0, 1.00, 0.56, 0.42, 0.05, 0.65, 0.92, 0.62, 0.80, 0.15],  # t2
        [0.0, 0.12, 0.72, 0.55, 0.05, 0.55, 0.45, 0.80, 1.00, 0.12],  # flair
    ],
    dtype=np.float32,
)


def base_contrasts() -> dict[str, dict[str, float]]:
    """The mean relative intensity of every class in every modality (a fresh copy).

    Returns:
        ``{modality: {class: value}}`` for :data:`MODALITIES` and :data:`CONTRAST_CLASSES`.

    Examples:
        >>> c = base_contrasts()
        >>> c["t2"]["csf"] > c["t2"]["gm"] > c["t2"]["wm"]
        True
    """
    return {
        m: {c: float(v) for c, v in zip(CONTRAST_CLASSES, row, strict=True)}
        for m, row in zip(MODALITIES, _BASE, strict=True)
    }


def jitter_contrasts(rng: np.random.Generator, *, relative_std: float = 0.04) -> np.ndarray:
    """Per-case contrast table: the base table times ``1 + relative_std * N(0, 1)`` (clipped).

    The jitter is clipped at two standard deviations, which keeps every tissue ordering of the
    base table (the closest pair, FLAIR GM/WM, differs by 27 %).

    Args:
        rng: the case's random generator.
        relative_std: standard deviation of the multiplicative jitter.

    Returns:
        Float32 array (4, 10): rows :data:`MODALITIES`, columns :data:`CONTRAST_CLASSES`.

    Examples:
        >>> t = jitter_contrasts(np.random.default_rng(0))
        >>> t.shape
        (4, 10)
    """
    noise = np.clip(rng.standard_normal(_BASE.shape), -2.0, 2.0).astype(np.float32)
    return _BASE * (1.0 + relative_std * noise)


def _legendre(n: int, degree: int) -> np.ndarray:
    """Legendre polynomials 0..degree evaluated on ``n`` points of [-1, 1], shape (n, degree+1)."""
    x = np.linspace(-1.0, 1.0, n)
    return np.polynomial.legendre.legvander(x, degree).astype(np.float32)


def bias_field(
    shape: tuple[int, int, int],
    *,
    rng: np.random.Generator,
    degree: int = 3,
    amplitude: tuple[float, float] = (0.15, 0.3),
    quantum: float = 1.0 / 512.0,
) -> np.ndarray:
    """Smooth multiplicative bias field ``1 + sum c_abc P_a(x) P_b(y) P_c(z)``.

    A random low-order Legendre expansion (total degree <= ``degree``), evaluated separably
    (three small tensor contractions instead of one 3D polynomial) and scaled so that
    ``max |field - 1|`` over the grid is drawn from ``amplitude``: the default gives fields
    within 0.7..1.3. Values are rounded to multiples of ``quantum`` so that the float32 file
    compresses well, while ``image / bias`` stays exact because the image uses the rounded field.

    Args:
        shape: grid shape (H, W, D).
        rng: random generator.
        degree: maximum total polynomial degree.
        amplitude: range of the maximum deviation from 1.
        quantum: rounding step of the field.

    Returns:
        Float32 field of ``shape``, positive.

    Examples:
        >>> b = bias_field((8, 9, 10), rng=np.random.default_rng(0))
        >>> bool(0.7 <= b.min() and b.max() <= 1.3)
        True
    """
    k = degree + 1
    a, b, c = np.meshgrid(np.arange(k), np.arange(k), np.arange(k), indexing="ij")
    coef = rng.standard_normal((k, k, k)).astype(np.float32)
    coef[(a + b + c) > degree] = 0.0
    coef[0, 0, 0] = 0.0
    coef /= 1.0 + (a + b + c)  # favour the smoothest terms
    px, py, pz = (_legendre(n, degree) for n in shape)
    field = np.einsum("yb,abz->ayz", py, np.tensordot(coef, pz, axes=([2], [1])))
    field = np.tensordot(px, field, axes=([1], [0])).astype(np.float32)  # (x, y, z)
    field -= np.float32(0.5 * (field.max() + field.min()))
    scale = rng.uniform(*amplitude) / (np.abs(field).max() + 1e-6)
    field *= np.float32(scale / quantum)
    field += np.float32(1.0 / quantum)
    np.rint(field, out=field)
    field *= np.float32(quantum)
    return field


def rician_noise(image: np.ndarray, *, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise (Rician distributed), float32.

    Args:
        image: noise-free magnitude image, any shape.
        sigma: standard deviation of each of the real and imaginary noise components.
        rng: random generator.

    Returns:
        ``|image + sigma * (n1 + i n2)|``, same shape, float32.

    Examples:
        >>> x = rician_noise(np.zeros((1000,)), sigma=1.0, rng=np.random.default_rng(0))
        >>> bool(abs(x.mean() - np.sqrt(np.pi / 2)) < 0.1)  # Rayleigh mean in the background
        True
    """
    real = rng.standard_normal(image.shape, dtype=np.float32)
    real *= sigma
    real += image
    imag = rng.standard_normal(image.shape, dtype=np.float32)
    imag *= sigma
    real *= real
    imag *= imag
    real += imag
    return np.sqrt(real, out=real)


@functools.lru_cache(maxsize=2)
def vessel_map(*, resolution: int = 1, seed: int = 1) -> np.ndarray:
    """Vessel fraction on the MNI head grid (cached, read-only): cortical veins and the sinus.

    Cortical veins are tubes where the zero sets of two smooth random fields cross (each zero
    set is a sheet; two sheets meet along curves), kept in the sulcal and extra-cerebral CSF.
    The superior sagittal sinus is a midline tube under the vertex. Fixed ``seed``: vessels are
    anatomy shared by all phantoms, which differ in pose.

    Args:
        resolution: MNI voxel size in mm, 1 or 2.
        seed: seed of the random fields.

    Returns:
        Float32 array on the :func:`~mrivol.synth.mni.load_head_model` grid, values in [0, 1].

    Examples:
        >>> v = vessel_map(resolution=2)
        >>> bool(0.0 < v.mean() < 0.05)
        True
    """
    head = load_head_model(resolution=resolution)
    tissues = head.tissues
    r = float(resolution)
    rng = np.random.default_rng(seed)
    shape = tissues.gm.shape
    sigma = 6.0 / r
    n1 = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    n2 = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    n1 /= n1.std()
    n2 /= n2.std()
    width = 0.12 * max(1.0, r / 1.5)
    tubes = np.clip(1.0 - np.maximum(np.abs(n1), np.abs(n2)) / width, 0.0, 1.0)
    d = head.distance
    csf = np.clip(1.0 - tissues.gm - tissues.wm, 0.0, 1.0) * tissues.brain_mask
    region = ((csf > 0.35) & (d > -8.0)) | ((d > -1.0) & (d < 2.5))
    vessels = np.where(region, tubes, 0.0).astype(np.float32)
    # Superior sagittal sinus: triangular midline tube just below the skull, front to back.
    x, y, z = grid_world_axes(tissues.affine, shape)
    sinus = (np.abs(x) < 3.5) & (d > -1.5) & (d < 3.0) & (z > 10.0) & (y > -95.0) & (y < 55.0)
    vessels = np.maximum(vessels, sinus.astype(np.float32))
    vessels.setflags(write=False)
    return vessels

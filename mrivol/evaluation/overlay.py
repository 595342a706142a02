"""PNG overlays of a validation case: image, truth and prediction contours per region."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrivol.io import save_figure_atomic

__all__ = ["axial_snapshot", "save_overlay_png"]

REGION_COLOURS = {"tc": "#ffd700", "wt": "#00e676", "et": "#ff1744"}


def axial_snapshot(
    image: np.ndarray, label: np.ndarray, pred: np.ndarray, *, channel: int = -1
) -> dict[str, np.ndarray]:
    """Cut the axial slice with the most tumour out of a case.

    Args:
        image: (C, H, W, D) image; ``channel`` picks the modality shown (default FLAIR, the last).
        label: (R, H, W, D) binary region masks (truth).
        pred: (R, H, W, D) binary region masks (prediction).

    Returns:
        dict with 2D arrays ``image`` (H, W), ``label`` and ``pred`` (R, H, W) and the slice index.
    """
    area = label.reshape(label.shape[0], -1, label.shape[-1]).sum(axis=(0, 1))
    z = int(np.argmax(area)) if area.max() > 0 else label.shape[-1] // 2
    return {
        "image": np.asarray(image[channel, ..., z], dtype=np.float32),
        "label": np.asarray(label[..., z] > 0),
        "pred": np.asarray(pred[..., z] > 0),
        "z": np.asarray(z),
    }


def save_overlay_png(
    snapshot: dict[str, np.ndarray],
    path: str | Path,
    *,
    regions: Sequence[str] = ("tc", "wt", "et"),
    title: str = "",
) -> Path:
    """Write image | truth | prediction panels with region contours, atomically.

    Args:
        snapshot: output of :func:`axial_snapshot`.
        path: destination PNG.
        regions: region names, in channel order of ``label`` / ``pred``.
        title: figure title (case id, Dice).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.rot90(snapshot["image"])
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.8))
    for ax, (name, masks) in zip(
        axes,
        (("image", None), ("truth", snapshot["label"]), ("prediction", snapshot["pred"])),
        strict=True,
    ):
        ax.imshow(img, cmap="gray")
        ax.set_title(name)
        ax.axis("off")
        if masks is None:
            continue
        for region, mask in zip(regions, masks, strict=True):
            if mask.any():
                ax.contour(
                    np.rot90(mask.astype(float)),
                    levels=[0.5],
                    colors=[REGION_COLOURS.get(region, "cyan")],
                    linewidths=1.2,
                )
    handles = [
        plt.Line2D([], [], color=REGION_COLOURS.get(r, "cyan"), label=r.upper()) for r in regions
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(regions), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    try:
        save_figure_atomic(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return path

"""Grad-CAM++ maps of a 3D classifier and their PNG views.

Computed with MONAI's :class:`monai.visualize.GradCAMpp` (Chattopadhay et al., "Grad-CAM++:
Improved Visual Explanations for Deep Convolutional Networks", WACV 2018).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mrivol.io import save_figure_atomic

__all__ = ["gradcam_pp", "save_gradcam_png"]


def gradcam_pp(
    network: torch.nn.Module,
    image: torch.Tensor,
    *,
    target_layer: str,
    class_idx: int | None = None,
) -> np.ndarray:
    """Grad-CAM++ map of one volume, upsampled to the input grid and scaled to [0, 1].

    MONAI's ``GradCAMpp`` registers forward and backward hooks on the target layer and never
    removes them (they would keep firing, and holding activations, through the rest of
    training), so the map is computed on a copy of the network in eval mode.

    Args:
        network: the classifier (left untouched).
        image: input (1, C, H, W, D) on the network's device.
        target_layer: name of the module whose activations are explained (e.g. ``"features"``).
        class_idx: class to explain; ``None`` explains the predicted class.

    Returns:
        Float32 array (H, W, D).
    """
    import copy

    from monai.visualize import GradCAMpp

    module = network.module if hasattr(network, "module") else network
    model = copy.deepcopy(module).eval()
    with torch.enable_grad():
        cam = GradCAMpp(nn_module=model, target_layers=target_layer)
        x = image.detach().float().requires_grad_(True)  # else torch warns: its full
        out = cam(x=x, class_idx=class_idx)  # backward hook sees no input needing grad
    return out[0, 0].detach().cpu().numpy().astype(np.float32)


def save_gradcam_png(path: Path, image: np.ndarray, cam: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    centre = [s // 2 for s in image.shape]
    views = [
        (image[:, :, centre[2]], cam[:, :, centre[2]], "axial"),
        (image[:, centre[1], :], cam[:, centre[1], :], "coronal"),
        (image[centre[0], :, :], cam[centre[0], :, :], "sagittal"),
    ]
    for ax, (img, heat, name) in zip(axes, views, strict=True):
        ax.imshow(img.T, cmap="gray", origin="lower")
        ax.imshow(heat.T, cmap="jet", alpha=0.35, origin="lower", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=80)
    plt.close(fig)

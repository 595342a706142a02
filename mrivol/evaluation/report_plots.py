"""PNG figures of a segmentation evaluation: metric box plots, case overlays, uncertainty maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mrivol.io import save_figure_atomic

__all__ = [
    "pick_best_median_worst",
    "save_case_figures",
    "save_metric_boxplot",
    "save_uncertainty_png",
]

# the box plot panels, those the rows have: legacy, then lesion-wise (evaluate-seg --challenge)
BOXPLOT_METRICS = ("dice", "hd95_mm", "lesionwise_dice", "lesionwise_hd95")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Save ``fig`` to ``path`` atomically and close it."""
    try:
        return save_figure_atomic(fig, path, dpi=110)
    finally:
        _pyplot().close(fig)


def save_metric_boxplot(
    rows: Sequence[dict[str, Any]],
    path: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Box plot (with the cases as points) of each metric per region, one panel per metric.

    Args:
        rows: per case and region rows as :func:`mrivol.metrics.segmentation_report` gives
            (with the lesion-wise columns of ``evaluate-seg --challenge`` when present).
        path: destination PNG.
        metrics: row keys to plot (default: ``dice``, ``hd95_mm`` and, when the rows have
            them, ``lesionwise_dice``, ``lesionwise_hd95``).
        title: figure title.
    """
    if metrics is None:
        metrics = [m for m in BOXPLOT_METRICS if any(m in r for r in rows)]
    regions = list(dict.fromkeys(str(r["region"]) for r in rows))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics, strict=True):
        shown = [g for g in regions if any(r["region"] == g and metric in r for r in rows)]
        data = [
            [float(r[metric]) for r in rows if r["region"] == region and metric in r]
            for region in shown
        ]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(shown) + 1), shown)
        for i, values in enumerate(data, start=1):
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(np.add(i, jitter), values, s=10, alpha=0.6, color="tab:blue")
        name = metric.replace("_mm", "").replace("hd95", "HD95 (mm)").replace("dice", "Dice")
        ax.set_title(name.replace("lesionwise_", "lesion-wise "))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, Path(path))


def pick_best_median_worst(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[str, float]]:
    """Cases with the best, median and worst mean Dice over regions: ``{tag: (case, dice)}``."""
    per_case: dict[str, list[float]] = {}
    for r in rows:
        if "dice" in r:  # lesion-wise-only regions (2024 rules) have no legacy Dice
            per_case.setdefault(str(r["case"]), []).append(float(r["dice"]))
    if not per_case:
        return {}
    ranked = sorted(per_case, key=lambda c: (np.mean(per_case[c]), c))
    pick = {"best": ranked[-1], "median": ranked[len(ranked) // 2], "worst": ranked[0]}
    return {tag: (case, float(np.mean(per_case[case]))) for tag, case in pick.items()}


def save_uncertainty_png(
    image: np.ndarray,
    truth: np.ndarray,
    maps: dict[str, np.ndarray],
    path: str | Path,
    *,
    title: str = "",
    vmax: float = float(np.log(2.0)),
) -> Path:
    """Axial slice with the most tumour: image with the truth contour, then each map.

    Args:
        image: (H, W, D) image (e.g. FLAIR).
        truth: (H, W, D) binary mask whose contour is drawn (e.g. whole tumour).
        maps: ``{name: (H, W, D) map}`` (e.g. predictive entropy, mutual information, in nats).
        path: destination PNG.
        title: figure title.
        vmax: colour-scale maximum (``ln 2``: the largest binary entropy).
    """
    plt = _pyplot()
    area = truth.reshape(-1, truth.shape[-1]).sum(axis=0)
    z = int(np.argmax(area)) if area.max() > 0 else truth.shape[-1] // 2
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(3.6 * (1 + len(maps)), 3.8))
    panels = [("image", image, "gray", None), *((n, m, "magma", vmax) for n, m in maps.items())]
    for ax, (name, volume, cmap, top) in zip(np.atleast_1d(axes), panels, strict=True):
        shown = ax.imshow(np.rot90(volume[..., z]), cmap=cmap, vmin=0 if top else None, vmax=top)
        if truth[..., z].any():
            ax.contour(np.rot90(truth[..., z].astype(float)), levels=[0.5], colors=["#00e676"])
        ax.set_title(name)
        ax.axis("off")
        if top:
            fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, Path(path))


def save_case_figures(
    rows: Sequence[dict[str, Any]],
    items: Mapping[str, Mapping[str, Any]],
    pred_dir: str | Path,
    out_dir: str | Path,
    *,
    labels: str = "brats2021",
) -> list[Path]:
    """Overlay PNGs of the best, median and worst case, and an uncertainty PNG (median case).

    Args:
        rows: per case and region metric rows (with ``case``, ``region``, ``dice``).
        items: ``{case: {"image": [t1, t1ce, t2, flair], "label": seg}}`` (original files).
        pred_dir: folder with ``<case>_seg.nii.gz`` and ``<case>_{entropy,mi}_wt.nii.gz``.
        out_dir: where ``overlay_{best,median,worst}.png`` and ``uncertainty.png`` go.
        labels: label convention of the maps.

    Returns:
        The written PNGs.
    """
    from mrivol.evaluation.overlay import axial_snapshot, save_overlay_png
    from mrivol.metrics import brats_region_masks

    def load(path: str | Path) -> np.ndarray:
        return np.asanyarray(nib.load(path).dataobj)

    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    written = []
    picks = pick_best_median_worst(rows)
    for tag, (case, dice) in picks.items():
        item = items[case]
        flair = load(item["image"][-1])[None]
        truth = brats_region_masks(load(item["label"]), labels=labels)
        pred = brats_region_masks(load(pred_dir / f"{case}_seg.nii.gz"), labels=labels)
        regions = ("TC", "WT", "ET")
        snapshot = axial_snapshot(
            flair, np.stack([truth[r] for r in regions]), np.stack([pred[r] for r in regions])
        )
        written.append(
            save_overlay_png(
                snapshot,
                out_dir / f"overlay_{tag}.png",
                regions=[r.lower() for r in regions],
                title=f"{tag}: {case} (mean Dice {dice:.3f})",
            )
        )
        maps = {k: pred_dir / f"{case}_{k}_wt.nii.gz" for k in ("entropy", "mi")}
        if tag == "median" and all(p.is_file() for p in maps.values()):
            written.append(
                save_uncertainty_png(
                    flair[0],
                    truth["WT"],
                    {f"WT {k} (nats)": load(p) for k, p in maps.items()},
                    out_dir / "uncertainty.png",
                    title=f"{case}: MC-dropout uncertainty, whole tumour",
                )
            )
    return written

"""DCGAN minority augmentation: pick the minority class, log G/D losses, write the samples.

Used by ``bundles/dcgan_aug``: MONAI's :class:`~monai.engines.GanTrainer` trains a 3D DCGAN
(:mod:`mrivol.networks.dcgan3d`) on the minority class of ONE training fold; at the end,
:class:`GanSampleWriter` generates ``N`` volumes and writes them as NIfTI with a ``t1-table``
manifest whose rows are marked ``synthetic = 1`` and carry that fold, so
:func:`mrivol.data.to_datalist` mixes them into that fold's training split only (the leakage
guard refuses them anywhere else). Generated volumes are brain-only T1 images in the GAN's
grid (the affine of the real training volumes it learnt from), intensities in ``[0, scale]``;
``ad_cls`` preprocesses them like any scan.

Examples:
    >>> items = minority_items(to_datalist(manifest, fold=0, split="train"))  # doctest: +SKIP
    >>> GanSampleWriter(generator=g, output_dir="runs/x/samples", fold=0,  # doctest: +SKIP
    ...                 diagnosis="AD", num_samples=20).attach(trainer)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mrivol.training.handlers import scalar_loss

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = [
    "GanLossLogger",
    "GanSampleWriter",
    "minority_class",
    "minority_items",
    "real_images",
    "save_sample_grid",
    "write_synthetic_manifest",
]


def minority_class(datalist: Sequence[dict[str, Any]], *, class_index: int | None = None) -> int:
    """The class the GAN learns: ``class_index``, or the rarest real class of ``datalist``.

    Args:
        datalist: a training split of :func:`mrivol.data.to_datalist` (``label``: class index).
        class_index: the class to keep; ``None`` picks the class with the fewest real scans
            (ties: the lowest index). Synthetic items never count.

    Raises:
        ValueError: no real item at all, or none of the requested class (the message lists
            the classes present).
    """
    real = [item for item in datalist if not item.get("synthetic", False)]
    if not real:
        raise ValueError("minority_class: the training datalist has no real scan.")
    counts = Counter(int(item["label"]) for item in real)
    if class_index is None:
        return min(counts, key=lambda c: (counts[c], c))
    if int(class_index) not in counts:
        raise ValueError(
            f"minority_class: no training scan of class {class_index} (classes present: "
            f"{dict(sorted(counts.items()))}); set minority_class to one of them."
        )
    return int(class_index)


def minority_items(
    datalist: Sequence[dict[str, Any]], *, class_index: int | None = None
) -> list[dict[str, Any]]:
    """The real items of the :func:`minority_class` (synthetic ones never train the GAN)."""
    k = minority_class(datalist, class_index=class_index)
    return [i for i in datalist if not i.get("synthetic", False) and int(i["label"]) == k]


def real_images(
    batchdata: dict[str, torch.Tensor],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    **kwargs: Any,
) -> torch.Tensor:
    """``GanTrainer``'s ``d_prepare_batch``: the real volumes (B, 1, H, W, D) of a batch."""
    return torch.as_tensor(batchdata["image"]).to(
        device=device, non_blocking=non_blocking, **kwargs
    )


class GanLossLogger:
    """Ignite handler: epoch means of ``g_loss`` and ``d_loss`` into ``engine.state.metrics``.

    MONAI's ``MLFlowHandler`` (attached after this one) then logs ``gan_g_loss`` and
    ``gan_d_loss`` once per epoch.
    """

    def __init__(self) -> None:
        self._sums = {"g_loss": 0.0, "d_loss": 0.0}
        self._n = 0

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._publish)

    def _reset(self, engine: Engine) -> None:
        self._sums, self._n = {k: 0.0 for k in self._sums}, 0

    def _accumulate(self, engine: Engine) -> None:
        output = engine.state.output
        for key in self._sums:
            self._sums[key] += scalar_loss(output[key])
        self._n += 1

    def _publish(self, engine: Engine) -> None:
        for key, total in self._sums.items():
            engine.state.metrics[f"gan_{key}"] = total / max(self._n, 1)


def save_sample_grid(volumes: np.ndarray, path: str | Path, *, columns: int = 4) -> Path:
    """A PNG grid of the middle axial, coronal and sagittal slices of ``volumes`` (N, H, W, D).

    One row of three panels per volume, ``columns`` volumes per row of the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mrivol.io import save_figure_atomic

    n = len(volumes)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, 3 * cols, figsize=(2.0 * 3 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, vol in enumerate(volumes):
        r, c = divmod(i, cols)
        h, w, d = vol.shape
        views = (vol[:, :, d // 2], vol[:, w // 2, :], vol[h // 2, :, :])
        for j, view in enumerate(views):
            axes[r, 3 * c + j].imshow(np.rot90(view), cmap="gray")
    fig.suptitle(f"{n} DCGAN samples (axial, coronal, sagittal middle slices)")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=80)
    plt.close(fig)
    return Path(path)


def write_synthetic_manifest(
    volumes: np.ndarray,
    affine: np.ndarray,
    out_dir: str | Path,
    *,
    fold: int,
    diagnosis: str,
    prefix: str = "gan",
) -> Path:
    """Write ``volumes`` (N, H, W, D) as NIfTI and their ``t1-table`` manifest (synthetic = 1).

    Files: ``<out_dir>/<prefix>-f<fold>-<i>/t1.nii.gz`` and ``<out_dir>/manifest.csv``. Each
    sample is its own subject (``<prefix>-f<fold>-<i>``, never a real subject id); ``fold`` is
    the fold whose training set generated it.

    Returns:
        Path of the manifest, readable by :func:`mrivol.data.read_manifest`.

    Raises:
        ValueError: ``diagnosis`` is not a t1-table class.
    """
    import nibabel as nib

    from mrivol.data.manifest import LAYOUTS
    from mrivol.io import write_csv_atomic

    layout = LAYOUTS["t1-table"]
    if diagnosis not in layout.classes:
        raise ValueError(f"write_synthetic_manifest: {diagnosis!r} is not one of {layout.classes}.")
    out = Path(out_dir)
    rows = []
    for i, vol in enumerate(volumes):
        subject = f"{prefix}-f{fold}-{i:04d}"
        rel = f"{subject}/t1.nii.gz"
        (out / subject).mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.asarray(vol, dtype=np.float32), affine), out / rel)
        rows.append(
            {"case_id": subject, "subject_id": subject, "session": "", "fold": int(fold),
             "dataset_root": ".", "t1": rel, "diagnosis": diagnosis, "synthetic": 1}
        )  # fmt: skip
    manifest = out / "manifest.csv"
    write_csv_atomic(rows, manifest)  # columns in the layout's order
    return manifest


class GanSampleWriter:
    """Ignite handler: when training completes, generate, write and grid ``num_samples`` volumes.

    Generator outputs in ``[-1, 1]`` are mapped to ``[0, scale]`` (the GAN learnt brain-only
    volumes whose background was the minimum, so the background returns to 0). The affine is
    that of the first real training batch (the GAN's grid in world space).

    Args:
        generator: the trained generator (latent (B, Z) -> (B, 1, H, W, D)).
        output_dir: where ``manifest.csv``, the sample folders and ``samples.png`` go.
        fold: the training fold the samples belong to.
        diagnosis: the class name of the samples (the minority class).
        num_samples: volumes to generate.
        scale: intensity of a generator output of 1.
        seed: latent-code seed (same seed, same samples).
        grid_samples: volumes shown in ``samples.png``.
        batch_size: volumes generated per forward pass.
    """

    def __init__(
        self,
        *,
        generator: torch.nn.Module,
        output_dir: str | Path,
        fold: int,
        diagnosis: str,
        num_samples: int,
        scale: float = 1000.0,
        seed: int = 0,
        grid_samples: int = 8,
        batch_size: int = 4,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"GanSampleWriter: num_samples must be >= 1, got {num_samples}.")
        self.generator, self.output_dir = generator, Path(output_dir)
        self.fold, self.diagnosis, self.num_samples = int(fold), diagnosis, int(num_samples)
        self.scale, self.seed, self.grid_samples = float(scale), int(seed), int(grid_samples)
        self.batch_size = int(batch_size)
        self.affine: np.ndarray | None = None
        self.manifest: Path | None = None

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self._remember_affine)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _remember_affine(self, engine: Engine) -> None:
        if self.affine is None:
            image = engine.state.batch["image"]
            affine = getattr(image, "affine", None)
            if affine is not None:
                affine = affine[0] if affine.ndim == 3 else affine
                self.affine = np.asarray(affine.detach().cpu(), dtype=np.float64)

    @torch.no_grad()
    def generate(self, device: torch.device | str = "cpu") -> np.ndarray:
        """``num_samples`` volumes (N, H, W, D) in ``[0, scale]``, the generator in eval mode."""
        was_training = self.generator.training
        self.generator.eval()
        gen = torch.Generator().manual_seed(self.seed)
        latent = getattr(self.generator, "latent_size", None) or self.generator.module.latent_size
        out = []
        for start in range(0, self.num_samples, self.batch_size):
            n = min(self.batch_size, self.num_samples - start)
            z = torch.randn(n, latent, generator=gen).to(device)
            out.append(self.generator(z)[:, 0].float().cpu())
        self.generator.train(was_training)
        vols = (torch.cat(out).clamp(-1, 1) + 1) / 2 * self.scale
        return vols.numpy()

    def _write(self, engine: Engine) -> None:
        device = next(self.generator.parameters()).device
        volumes = self.generate(device)
        affine = self.affine if self.affine is not None else np.eye(4)
        self.manifest = write_synthetic_manifest(
            volumes, affine, self.output_dir, fold=self.fold, diagnosis=self.diagnosis
        )
        save_sample_grid(volumes[: self.grid_samples], self.output_dir / "samples.png")
        print(
            f"wrote {len(volumes)} synthetic {self.diagnosis} scans -> {self.manifest}", flush=True
        )

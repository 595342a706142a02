"""Training recipes side by side: default flips vs nnU-Net's augmentation vs a boundary loss term.

Each recipe trains brats_seg (cpu profile, the default 2 mm phantoms, fold 0, the same seed and
epochs) and is then scored on its own validation fold and on two shifted copies of those
validation cases that training never saw:

* ``contrast``: every modality through a gamma of 1.8 on its own intensity range, then scaled
  by 0.7 (another scanner's contrast and gain);
* ``resolution``: 6 mm slices (three 2 mm slices averaged, then linearly interpolated back to
  the 2 mm grid), as a thick-slice acquisition resampled to the training grid.

Per recipe the figures are: ``sample_cpu_ms`` (CPU milliseconds per random training sample of
its augmentation, on a cached case), ``step_s`` (seconds per training iteration, from the run's
``epoch_seconds`` / iterations), ``val_mean_dice`` (best validation Dice), and ``dice_<set>``
(mean of the TC / WT / ET Dice of ``mrivol evaluate`` on each shifted set, original grids).

Usage::

    python benchmarks/recipes.py --epochs 30            # ~1.5 h on 2 idle cores, three recipes
    python benchmarks/recipes.py --recipes default,nnunet --epochs 4

An epoch of the default recipe takes ~47 s on 2 idle cores (validation included), each
recipe's evaluation on the two shifted sets ~3 min. The phantoms need ~25 epochs to reach their
plateau (bundle docs), so fewer epochs compare under-trained networks.

The last line is a JSON object keyed by recipe.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrivol.data import BRATS_MODALITIES  # noqa: E402

RECIPES = {
    "default": {},
    "nnunet": {"augmentation": "nnunet"},
    # HausdorffDTLoss sums squared voxel distances: ~100-200 on an untrained 64^3 patch, so a
    # weight of 0.01 puts it on the scale of Dice + CE (at 0.5 it swamped them: val Dice 0.005
    # after 2 epochs)
    "boundary": {"boundary_loss_weight": 0.01},
}


def _shift_contrast(data: np.ndarray) -> np.ndarray:
    lo, hi = float(data.min()), float(data.max())
    unit = (data - lo) / max(hi - lo, 1e-6)
    return (lo + 0.7 * (hi - lo) * unit**1.8).astype(np.float32)


def _shift_resolution(data: np.ndarray) -> np.ndarray:
    z = data.shape[2] - data.shape[2] % 3
    slabs = data[:, :, :z].reshape(*data.shape[:2], z // 3, 3).mean(axis=3)
    centres = np.arange(z // 3) * 3 + 1.0
    out = np.empty_like(data, dtype=np.float32)
    for k in range(data.shape[2]):
        j = int(np.clip(np.searchsorted(centres, k) - 1, 0, len(centres) - 2))
        w = float(np.clip((k - centres[j]) / 3.0, 0.0, 1.0))
        out[:, :, k] = (1 - w) * slabs[:, :, j] + w * slabs[:, :, j + 1]
    return out


SHIFTS = {"contrast": _shift_contrast, "resolution": _shift_resolution}


def shifted_manifest(manifest: Path, name: str, out: Path) -> Path:
    """Fold-0 validation cases of ``manifest`` with ``SHIFTS[name]`` applied, all in fold 0."""
    df = pd.read_csv(manifest)
    val = df[df["fold"] == 0].copy()
    root = manifest.parent / str(val["dataset_root"].iloc[0])
    target = out / name
    for _, row in val.iterrows():
        for mod in BRATS_MODALITIES:
            dst = target / row[mod]
            if dst.is_file():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            img = nib.load(root / row[mod])
            shifted = SHIFTS[name](np.asarray(img.dataobj, dtype=np.float32))
            tmp = dst.with_name(f".{dst.name}")
            nib.save(nib.Nifti1Image(shifted, img.affine), tmp)
            tmp.replace(dst)
        seg = target / row["seg"]
        if not seg.is_file():
            seg.parent.mkdir(parents=True, exist_ok=True)
            seg.write_bytes((root / row["seg"]).read_bytes())
    val["dataset_root"] = str(target.resolve())
    path = out / f"{name}.csv"
    val.to_csv(path, index=False)
    return path


def sample_cpu_ms(overrides: dict[str, Any], manifest: Path, calls: int = 8) -> float:
    """CPU ms per random sample of the recipe's augmentation, drawn from one cached case."""
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

    from mrivol.data import to_datalist
    from mrivol.training import config_files

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files("brats_seg", "train", profile="cpu",
                                                    net="unet")])  # fmt: skip
    parser.update({"manifest": str(manifest), **overrides})
    chain = (
        parser.get_parsed_content("preprocessing_transforms")
        + parser.get_parsed_content("train_augmentation", instantiate=True)
        + parser.get_parsed_content("intensity_augmentation")
    )
    from monai.transforms.transform import Randomizable

    cut = next(i for i, t in enumerate(chain) if isinstance(t, Randomizable))
    cached = Compose(chain[:cut])(to_datalist(manifest, fold=0, split="train")[0])
    tail = Compose(chain[cut:])
    tail.set_random_state(seed=0)
    samples, t0 = 0, time.process_time()
    for _ in range(calls):
        samples += len(tail(copy.copy(cached)))
    return 1000 * (time.process_time() - t0) / samples


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("runs") / "bench-recipes")
    args = parser.parse_args(argv)
    import mlflow

    from mrivol.evaluation.evaluate import evaluate
    from mrivol.training import train
    from mrivol.training.run import resolve_manifest

    manifest = resolve_manifest("brats_seg", "cpu", None)  # the default phantoms (made once)
    shifted = {name: shifted_manifest(manifest, name, args.out / "shifted") for name in SHIFTS}
    figures: dict[str, Any] = {"epochs": args.epochs}
    for recipe in args.recipes.split(","):
        overrides = {**RECIPES[recipe], "system_metrics": False, "log_model": False}
        row: dict[str, Any] = {"sample_cpu_ms": sample_cpu_ms(RECIPES[recipe], manifest)}
        result = train(bundle="brats_seg", epochs=args.epochs, profile="cpu", resume=False,
                       overrides=overrides)  # fmt: skip
        client = mlflow.MlflowClient(result.tracking_uri)
        run = client.get_run(result.run_id)
        seconds = [m.value for m in client.get_metric_history(result.run_id, "epoch_seconds")]
        iterations = int(run.data.params.get("n_train", "24")) // int(
            run.data.params.get("batch_size", "2")
        )
        row["step_s"] = float(np.median(seconds)) / max(iterations, 1)
        row["val_mean_dice"] = result.best_metrics.get("val_mean_dice")
        row["run_id"] = result.run_id
        for name, path in shifted.items():
            m = evaluate(bundle="brats_seg", run=result.run_id, data=str(path),
                         out=args.out / recipe / name, mc_samples=1)  # fmt: skip
            row[f"dice_{name}"] = float(np.mean([m[f"dice_{r}"] for r in ("tc", "wt", "et")]))
        figures[recipe] = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        print(f"{recipe}: {figures[recipe]}", flush=True)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()

"""Benchmark brats_seg's data path: the compact, multi-thread cache against the chain it replaced.

Both chains are measured side by side in one run, on the same phantoms:

* **before**: brats_seg 0.5.0's chain: float32 image, the label map turned into float32 TC / WT /
  ET channels *before* the cache, one cache thread (MONAI's ``NibabelReader`` is not
  thread-safe), and ``RandCropByPosNegLabeld`` recomputing the tumour / head voxel indices of
  the whole volume for every sample, after a deep copy of the cached case;
* **after**: the bundle's chain as configured now (``bundles/brats_seg/configs``): image in
  ``cache_dtype`` (float16), a uint8 label map (regions made on the device by
  :class:`mrivol.training.CachedBatch`), indices computed once per case (``FgBgToIndicesd``)
  and capped (``CapIndicesd``), several cache threads (``ThreadSafeNibabelReader``), no copy.

Figures (keys of the JSON object printed last):

The phantoms are skull-stripped with their true brain mask, as BraTS distributes its cases
(zero background: the bundle's foreground crop keeps the brain); the raw phantoms (whole head in
Rician noise, nothing to crop) are measured for the cache size too.

* ``cached_mb_per_case_{before,after}``: MiB a full-size (240x240x155, 1 mm) skull-stripped
  phantom case takes in the cache through the gpu profile's deterministic transforms, the mean
  over the ``--cases`` cases (``cached_mb_per_case_after_max``: the largest; ``case_shapes``:
  their brain boxes; ``raw_head_cached_mb_per_case_{before,after}``: the first raw, unstripped
  phantom; ``cached_bytes_per_voxel_{before,after}``: per voxel of the brain boxes, which
  scales the figure to boxes of another size);
* ``fill_s_per_case_{1,2}_workers``: wall seconds per case to fill the after-cache of
  ``--cases`` full-size cases with one and with two fill threads, torch's two intra-op threads
  split between them; ``fill_s_per_case_1_workers_1_thread``: one fill thread with one
  intra-op thread. ``fill_speedup_2_workers`` is the parallel fill's scaling (two fill threads
  against one, one core each); ``fill_speedup_2_workers_vs_1_worker_2_threads`` compares with
  one fill thread whose kernels use both cores (each the fastest of ``--repeats`` interleaved
  fills; ``fill_s_per_case_before``: the before chain, one thread, as it ran);
* ``sample_cpu_ms_{before,after}`` and ``sample_cpu_ratio``: CPU milliseconds per random
  training sample (crop + augmentation) drawn from a cached full-size case;
* ``data_wait_share_{before,after}``: the share of a cpu-profile training step (2 mm phantoms,
  64^3 patches, batch 2 x 2 samples, the bundle's U-Net, Dice+CE, AdamW) spent waiting for the
  batch, with the cpu profile's loader (no worker processes on 2 cores);
  ``nnunet_sample_cpu_ms`` and ``nnunet_data_wait_share``: the same with ``augmentation:
  nnunet`` (nnU-Net v2's training augmentation) on the cpu-profile cases
  (``default_sample_cpu_ms``: the default recipe's per-sample CPU on those cases);
* ``nnunet_topology_step_s_{default,nnunet}`` and ``nnunet_topology_step_ratio``: seconds per
  training step of the dynunet at the topology of nnU-Net's side-by-side measurement (5 stages,
  32-320 features, 64^3, 2 patches per step, deep supervision) with each recipe, the
  augmentation in the main process (``nnunet_topology_data_wait_share_*``: its share of the
  step); ``nnunet_topology_step_s_nnunet_v2_reference``: nnU-Net v2's 7.64 s on this CPU.

Usage::

    python benchmarks/data_pipeline.py                 # phantoms under ~/.cache/mrivol/bench
    python benchmarks/data_pipeline.py --cases 4 --steps 6 --dir /tmp/bench
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monai.bundle import ConfigParser  # noqa: E402
from monai.transforms import (  # noqa: E402
    CastToTyped,
    Compose,
    ConvertToMultiChannelBasedOnBratsClassesd,
    CropForegroundd,
    EnsureTyped,
    LoadImaged,
    NormalizeIntensityd,
    Orientationd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandomizableTrait,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Spacingd,
    SpatialPadd,
    Transform,
)

from mrivol.data import BudgetedCacheDataset  # noqa: E402
from mrivol.data.cache_budget import item_nbytes  # noqa: E402
from mrivol.paths import cache_dir  # noqa: E402
from mrivol.synth.phantoms import case_files, generate_brats_phantoms  # noqa: E402
from mrivol.training import CachedBatch, config_files  # noqa: E402
from mrivol.training.workflow import build_network  # noqa: E402

MB = 1024**2


def phantom_datalist(root: Path, cases: int, shape: tuple[int, ...], spacing: float) -> list[dict]:
    """``cases`` phantoms of ``shape`` at ``spacing`` mm (made once, reused) as a datalist."""
    dirs = generate_brats_phantoms(
        root, n_cases=cases, shape=shape, spacing=(spacing,) * 3, workers=2, progress=False
    )
    items = []
    for d in dirs:
        name = d.name
        items.append(
            {
                "image": [str(d / f"{name}_{m}.nii.gz") for m in ("t1", "t1ce", "t2", "flair")],
                "label": str(d / f"{name}_seg.nii.gz"),
                "case": name,
            }
        )
    return items


def skull_stripped(items: list[dict], root: Path) -> list[dict]:
    """The cases masked by their true brain mask, as BraTS distributes them (made once).

    BraTS cases are skull-stripped with a zero background, so the bundle's foreground crop
    keeps the brain; the raw phantoms show the whole head in Rician noise (nothing to crop).
    """
    out = []
    for item in items:
        case_dir = Path(item["label"]).parent
        mask = np.asarray(nib.load(case_files(case_dir)["brainmask"]).dataobj) > 0
        target = root / item["case"]
        target.mkdir(parents=True, exist_ok=True)
        images = []
        for path in item["image"]:
            dst = target / Path(path).name
            if not dst.is_file():
                img = nib.load(path)
                data = np.asarray(img.dataobj) * mask
                tmp = dst.with_name(f".{dst.name}")
                nib.save(nib.Nifti1Image(data.astype(img.get_data_dtype()), img.affine), tmp)
                tmp.replace(dst)
            images.append(str(dst))
        out.append({**item, "image": images})
    return out


def bundle_values(profile: str) -> ConfigParser:
    """The brats_seg training config of ``profile`` (unet), unresolved."""
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files("brats_seg", "train", profile=profile,
                                                    net="unet")])  # fmt: skip
    parser["manifest"] = "unused.csv"
    return parser


def after_chain(parser: ConfigParser) -> list:
    """The bundle's training chain as configured now (cached head + random tail)."""
    return (
        parser.get_parsed_content("preprocessing_transforms")
        + parser.get_parsed_content("train_augmentation", instantiate=True)
        + parser.get_parsed_content("intensity_augmentation")
    )


def before_chain(parser: ConfigParser) -> list:
    """brats_seg 0.5.0's training chain (float32 regions cached, indices per sample)."""
    spacing = parser.get_parsed_content("spacing")
    roi = parser.get_parsed_content("roi_size")
    keys = ["image", "label"]
    return [
        LoadImaged(keys, ensure_channel_first=True, image_only=True),
        EnsureTyped(keys),
        Orientationd(keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Spacingd(keys, pixdim=spacing, mode=("bilinear", "nearest")),
        ConvertToMultiChannelBasedOnBratsClassesd("label", et_label=4),
        CastToTyped("label", dtype=torch.float32),
        CropForegroundd(keys, source_key="image", margin=2),
        NormalizeIntensityd("image", nonzero=True, channel_wise=True),
        SpatialPadd(keys, spatial_size=roi),
        RandCropByPosNegLabeld(
            keys,
            label_key="label",
            spatial_size=roi,
            pos=0.5,
            neg=0.5,
            num_samples=int(parser.get_parsed_content("num_samples")),
            image_key="image",
            image_threshold=0,
        ),  # fmt: skip
        *(RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(3)),
        RandScaleIntensityd("image", factors=0.1, prob=1.0),
        RandShiftIntensityd("image", offsets=0.1, prob=1.0),
    ]


def split(chain: list) -> tuple[Compose, Compose]:
    """(deterministic head, random tail), cut where CacheDataset cuts: the first random one."""
    cut = next(
        i
        for i, t in enumerate(chain)
        if isinstance(t, RandomizableTrait) or not isinstance(t, Transform)
    )
    return Compose(chain[:cut]), Compose(chain[cut:])


def fill_seconds(items: list[dict], chain: list, workers: int, *, torch_threads: int = 2) -> float:
    """Wall seconds to fill a cache of ``items`` with ``workers`` threads.

    ``torch_threads`` intra-op threads in all, which the fill splits between its threads
    (:func:`mrivol.data.cache_budget.fill_threads`).
    """
    torch.set_num_threads(torch_threads)
    t0 = time.perf_counter()
    dataset = BudgetedCacheDataset(items, Compose(chain), num_workers=workers, budget_mb=10**6,
                                   progress=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    torch.set_num_threads(2)
    assert len(dataset._cache) == len(items), "the cache did not hold every case"  # noqa: SLF001
    return seconds


def sample_cpu_ms(cached: dict, tail: Compose, *, copy_first: bool, calls: int) -> float:
    """CPU milliseconds per random sample drawn from one cached case."""
    tail.set_random_state(seed=0)
    samples = 0
    t0 = time.process_time()
    for _ in range(calls):
        out = tail(copy.deepcopy(cached) if copy_first else cached)
        samples += len(out) if isinstance(out, list) else 1
    return 1000 * (time.process_time() - t0) / samples


def step_timing(items: list[dict], chain: list, *, parser: ConfigParser, steps: int,
                copy_cache: bool, network: torch.nn.Module | None = None,
                loss_fn: torch.nn.Module | None = None) -> tuple[float, float]:  # fmt: skip
    """(share of a training step spent waiting for the batch, median seconds per step).

    The main-process loader of the cpu profile; ``network`` / ``loss_fn`` default to the
    bundle's U-Net and Dice+CE. The first step warms up and is not counted.
    """
    from monai.data import DataLoader
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    dataset = BudgetedCacheDataset(items, Compose(chain), num_workers=2, budget_mb=10**6,
                                   progress=False, copy_cache=copy_cache)  # fmt: skip
    loader = DataLoader(dataset, batch_size=int(parser.get_parsed_content("batch_size")),
                        shuffle=True, num_workers=0)  # fmt: skip
    network = network or build_network("brats_seg", "unet", profile="cpu")
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    loss_fn = loss_fn or DiceCELoss(sigmoid=True)
    prepare = CachedBatch(et_label=4)
    wait, seconds = 0.0, []
    for fetch_s, batch in itertools.islice(_timed_batches(loader), steps + 1):
        t0 = time.perf_counter()
        image, label = prepare(batch)
        t1 = time.perf_counter()
        optimizer.zero_grad()
        loss = loss_fn(network(image), label)
        loss.backward()
        optimizer.step()
        seconds.append(fetch_s + time.perf_counter() - t0)
        if len(seconds) > 1:  # the first step warms up
            wait += fetch_s + t1 - t0
    timed = seconds[1:]
    return wait / sum(timed), float(np.median(timed))


def _timed_batches(loader: Any) -> Any:
    """Yield (seconds to fetch, batch) from ``loader``, epoch after epoch."""
    while True:
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            yield time.perf_counter() - t0, batch


def data_wait_share(items: list[dict], chain: list, *, parser: ConfigParser, steps: int,
                    copy_cache: bool) -> float:  # fmt: skip
    """Share of a cpu-profile training step spent waiting for the batch (main-process loader)."""
    return step_timing(items, chain, parser=parser, steps=steps, copy_cache=copy_cache)[0]


# nnU-Net's 3d_fullres topology of the side-by-side measurement on this CPU: 5 stages,
# 32-320 features, 64^3 patch, batch 2; nnU-Net v2 took 7.64 s per iteration there (its whole
# augmentation in 2 background workers), mrivol's dynunet 7.20 s with the default recipe.
NNUNET_TOPOLOGY_PLAN = {
    "strides": [[1, 1, 1]] + [[2, 2, 2]] * 4,
    "kernel_sizes": [[3, 3, 3]] * 5,
    "filters": [32, 64, 128, 256, 320],
    "patch_size": [64, 64, 64],
}
NNUNET_V2_STEP_S = 7.64


def nnunet_topology_steps(items: list[dict], parser: ConfigParser, steps: int) -> dict[str, float]:
    """Seconds per training step of the dynunet at nnU-Net's topology, per recipe.

    Batch 1 case x 2 patches (nnU-Net's batch 2), the dynunet's deep-supervision Dice+CE, the
    cpu profile's main-process loader; ``default`` and ``nnunet`` augmentation side by side.
    """
    from monai.losses import DiceCELoss

    from mrivol.losses import StackedDeepSupervisionLoss
    from mrivol.networks import build_dynunet

    out: dict[str, float] = {}
    for recipe in ("default", "nnunet"):
        parser["augmentation"] = recipe
        parser["batch_size"], parser["num_samples"] = 1, 2
        torch.manual_seed(0)
        network = build_dynunet(NNUNET_TOPOLOGY_PLAN, in_channels=4, out_channels=3,
                                dropout=0.1)  # fmt: skip
        loss = StackedDeepSupervisionLoss(DiceCELoss(sigmoid=True), weight_mode="exp")
        share, step_s = step_timing(items, after_chain(parser), parser=parser, steps=steps,
                                    copy_cache=False, network=network, loss_fn=loss)  # fmt: skip
        out[f"nnunet_topology_step_s_{recipe}"] = step_s
        out[f"nnunet_topology_data_wait_share_{recipe}"] = share
    out["nnunet_topology_step_ratio"] = (
        out["nnunet_topology_step_s_nnunet"] / out["nnunet_topology_step_s_default"]
    )
    out["nnunet_topology_step_s_nnunet_v2_reference"] = NNUNET_V2_STEP_S
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=cache_dir() / "bench" / "data_pipeline")
    parser.add_argument("--cases", type=int, default=4, help="full-size cases for the fill")
    parser.add_argument("--calls", type=int, default=8, help="random draws per chain")
    parser.add_argument("--steps", type=int, default=6, help="timed cpu-profile steps per chain")
    parser.add_argument("--repeats", type=int, default=3, help="cache fills per setting")
    parser.add_argument("--topology-steps", type=int, default=3,
                        help="timed steps per recipe at nnU-Net's topology")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    gpu = bundle_values("gpu")
    raw = phantom_datalist(args.dir / "full", args.cases, (240, 240, 155), 1.0)
    full = skull_stripped(raw, args.dir / "full-skull-stripped")
    before, after = before_chain(gpu), after_chain(gpu)
    head_b, tail_b = split(before)
    head_a, tail_a = split(after)
    figures: dict[str, Any] = {
        "raw_head_cached_mb_per_case_before": item_nbytes(head_b(dict(raw[0]))) / MB,
        "raw_head_cached_mb_per_case_after": item_nbytes(head_a(dict(raw[0]))) / MB,
    }
    sizes_b, sizes_a, voxels, shapes = [], [], [], []
    for item in full:  # every case: brain boxes differ by pose and anatomy
        cached_b, cached_a = head_b(dict(item)), head_a(dict(item))
        sizes_b.append(item_nbytes(cached_b))
        sizes_a.append(item_nbytes(cached_a))
        shapes.append(list(cached_a["image"].shape[1:]))
        voxels.append(int(np.prod(shapes[-1])))
    figures |= {
        "case_shapes": shapes,
        "cached_mb_per_case_before": float(np.mean(sizes_b)) / MB,
        "cached_mb_per_case_after": float(np.mean(sizes_a)) / MB,
        "cached_mb_per_case_after_max": max(sizes_a) / MB,
        "cached_bytes_per_voxel_before": sum(sizes_b) / sum(voxels),
        "cached_bytes_per_voxel_after": sum(sizes_a) / sum(voxels),
    }
    figures["cache_size_ratio"] = (
        figures["cached_mb_per_case_after"] / figures["cached_mb_per_case_before"]
    )
    print(f"cached per case: {figures['cached_mb_per_case_before']:.1f} MiB before, "
          f"{figures['cached_mb_per_case_after']:.1f} MiB after", flush=True)  # fmt: skip
    figures["sample_cpu_ms_before"] = sample_cpu_ms(cached_b, tail_b, copy_first=True,
                                                    calls=args.calls)  # fmt: skip
    figures["sample_cpu_ms_after"] = sample_cpu_ms(cached_a, tail_a, copy_first=False,
                                                   calls=args.calls)  # fmt: skip
    figures["sample_cpu_ratio"] = figures["sample_cpu_ms_after"] / figures["sample_cpu_ms_before"]
    print(f"CPU per random sample: {figures['sample_cpu_ms_before']:.0f} ms before, "
          f"{figures['sample_cpu_ms_after']:.0f} ms after", flush=True)  # fmt: skip
    del cached_b, cached_a
    n = len(full)
    figures["fill_s_per_case_before"] = fill_seconds(full, before, 1) / n
    fills: dict[tuple[int, int], list[float]] = {}
    for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits all
        for workers, threads in ((1, 1), (1, 2), (2, 2)):
            seconds = fill_seconds(full, after, workers, torch_threads=threads)
            fills.setdefault((workers, threads), []).append(seconds / n)
    fill = {k: min(v) for k, v in fills.items()}  # the least disturbed repeat, as timeit advises
    figures["fill_s_per_case_1_workers_1_thread"] = fill[1, 1]
    figures["fill_s_per_case_1_workers"] = fill[1, 2]
    figures["fill_s_per_case_2_workers"] = fill[2, 2]
    figures["fill_speedup_2_workers"] = fill[1, 1] / fill[2, 2]
    figures["fill_speedup_2_workers_vs_1_worker_2_threads"] = fill[1, 2] / fill[2, 2]
    print(f"cache fill per case: {fill[1, 1]:.2f} s (1 fill thread, 1 torch thread), "
          f"{fill[1, 2]:.2f} s (1 fill thread, 2 torch threads), {fill[2, 2]:.2f} s (2 fill "
          "threads sharing 2 torch threads)", flush=True)  # fmt: skip

    cpu = bundle_values("cpu")
    small = skull_stripped(
        phantom_datalist(args.dir / "cpu", args.cases, (120, 120, 78), 2.0),
        args.dir / "cpu-skull-stripped",
    )
    figures["data_wait_share_before"] = data_wait_share(
        small, before_chain(cpu), parser=cpu, steps=args.steps, copy_cache=True
    )
    figures["data_wait_share_after"] = data_wait_share(
        small, after_chain(cpu), parser=cpu, steps=args.steps, copy_cache=False
    )
    head_d, tail_d = split(after_chain(cpu))
    figures["default_sample_cpu_ms"] = sample_cpu_ms(
        head_d(dict(small[0])), tail_d, copy_first=False, calls=args.calls
    )
    cpu["augmentation"] = "nnunet"  # nnU-Net v2's augmentation, in the main process as well
    head_n, tail_n = split(after_chain(cpu))
    figures["nnunet_sample_cpu_ms"] = sample_cpu_ms(
        head_n(dict(small[0])), tail_n, copy_first=False, calls=args.calls
    )
    figures["nnunet_data_wait_share"] = data_wait_share(
        small, after_chain(cpu), parser=cpu, steps=args.steps, copy_cache=False
    )
    print(f"data wait per cpu-profile step: {figures['data_wait_share_before']:.1%} before, "
          f"{figures['data_wait_share_after']:.1%} after", flush=True)  # fmt: skip
    figures |= nnunet_topology_steps(small, bundle_values("cpu"), args.topology_steps)
    print(f"dynunet at nnU-Net's topology: {figures['nnunet_topology_step_s_default']:.2f} s per "
          f"step (default recipe), {figures['nnunet_topology_step_s_nnunet']:.2f} s (nnunet); "
          f"nnU-Net v2: {NNUNET_V2_STEP_S} s", flush=True)  # fmt: skip
    figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()

"""Per-rank random streams: two gloo ranks draw different augmentation for the same step.

Each rank runs brats_seg's own training data path (``train#dataloader`` of the cpu profile,
unshuffled so both ranks see the same cases in the same order) after the bundle's
``initialize`` seeding, and records the first batch's patches and the intensity factors its
``RandScaleIntensityd`` drew. Rank 0 must draw exactly what a single process with the same seed
draws (so the one-vs-two-process equality of the deterministic setting is untouched), rank 1
something else.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from mrivol.training import config_files
from tests.conftest import TINY_OVERRIDES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _first_batch(manifest: str, out: Path) -> None:
    """The bundle's seeding and train loader in this process; its first batch saved to ``out``."""
    from monai.bundle import ConfigParser
    from monai.transforms import RandScaleIntensityd

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files("brats_seg", "train", profile="cpu",
                                                    net="unet")])  # fmt: skip
    parser.update({**TINY_OVERRIDES, "manifest": manifest, "train#dataloader#shuffle": False,
                   "cache_workers": 1})  # fmt: skip
    assert "seed_process" in parser["initialize"][0]
    parser.get_parsed_content("initialize#0")  # the bundle's seeding: seed + rank
    loader = parser.get_parsed_content("train#dataloader")
    batch = next(iter(loader))
    scaler = next(
        t
        for t in parser.get_parsed_content("train#preprocessing").transforms
        if isinstance(t, RandScaleIntensityd)
    )
    torch.save({"image": batch["image"].as_tensor(), "factor": float(scaler.scaler.factor)}, out)


def _rank(r: int, world: int, port: int, manifest: str, out_dir: str) -> None:
    os.environ.update({"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})  # fmt: skip
    from mrivol.training.distributed import destroy_distributed, init_distributed

    init_distributed(timeout_minutes=2)
    try:
        _first_batch(manifest, Path(out_dir) / f"rank{r}.pt")
    finally:
        destroy_distributed()


def test_two_gloo_ranks_draw_different_augmentation_and_rank0_draws_the_single_process_one(
    tiny_brats_manifest, tmp_path
):
    mp.spawn(_rank, args=(2, _free_port(), str(tiny_brats_manifest), str(tmp_path)), nprocs=2)
    _first_batch(str(tiny_brats_manifest), tmp_path / "single.pt")  # no process group: rank 0
    r0, r1, single = (torch.load(tmp_path / f"{n}.pt") for n in ("rank0", "rank1", "single"))
    assert r0["image"].shape == r1["image"].shape  # the same cases, batch for batch
    assert not torch.equal(r0["image"], r1["image"])  # other crops / flips / intensities
    assert r0["factor"] != r1["factor"]
    torch.testing.assert_close(r0["image"], single["image"], rtol=0, atol=0)
    assert r0["factor"] == single["factor"]

"""BudgetedCacheDataset: within the budget, a clear message beyond it, every case served."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose, Lambdad, RandFlipd

from mrivol.data import BudgetedCacheDataset, available_memory_bytes, cache_budget_bytes
from mrivol.data.cache_budget import item_nbytes

CASE_BYTES = 4 * 16**3 * 4  # one float32 (4, 16, 16, 16) image


def _chain() -> Compose:
    """A deterministic 'load' (a case's image from its index) and one random flip."""
    load = Lambdad(keys="image", func=lambda i: torch.full((4, 16, 16, 16), float(i)))
    return Compose([load, RandFlipd(keys="image", prob=0.5, spatial_axis=0)])


def _data(n: int) -> list[dict]:
    return [{"image": i, "case": i} for i in range(n)]


def test_everything_is_cached_within_the_budget(capsys):
    ds = BudgetedCacheDataset(_data(6), _chain(), budget_mb=1, num_workers=2, progress=False)
    assert ds.cache_num == 6 and ds.cached_bytes == 6 * CASE_BYTES
    assert ds.message == "" and capsys.readouterr().err == ""


def test_a_budget_below_the_data_set_caches_what_fits_and_says_so(capsys):
    budget_mb = 2.5 * CASE_BYTES / 2**20  # room for two and a half cases
    ds = BudgetedCacheDataset(_data(10), _chain(), budget_mb=budget_mb, progress=False)
    assert ds.cache_num == 2 and ds.cached_bytes <= budget_mb * 2**20
    err = capsys.readouterr().err
    assert "exceeds the budget" in err and "2 of 10 cases in memory" in err
    assert "preprocessed every epoch" in err and "cache_overflow: disk" in err
    for i in range(10):  # cached or not, every case comes out right
        item = ds[i]
        assert item["case"] == i and float(item["image"].mean()) == pytest.approx(i)


def test_disk_overflow_preprocesses_the_rest_once_into_a_persistent_cache(tmp_path, capsys):
    budget_mb = 1.5 * CASE_BYTES / 2**20
    ds = BudgetedCacheDataset(
        _data(5), _chain(), budget_mb=budget_mb, overflow="disk", disk_cache_dir=tmp_path,
        progress=False,
    )  # fmt: skip
    assert ds.cache_num == 1 and ds.disk is not None
    assert (
        f"the other 4 are preprocessed once into the disk cache {tmp_path}"
        in capsys.readouterr().err
    )
    assert [float(ds[i]["image"].mean()) for i in range(5)] == [0, 1, 2, 3, 4]
    assert len(list(tmp_path.glob("*.pt"))) == 4  # the cases beyond the budget, on disk


def test_a_zero_budget_caches_nothing_and_still_serves_every_case():
    ds = BudgetedCacheDataset(_data(3), _chain(), budget_mb=0, progress=False)
    assert ds.cache_num == 0 and [ds[i]["case"] for i in range(3)] == [0, 1, 2]


def test_random_transforms_never_write_into_the_cache_without_copies():
    ds = BudgetedCacheDataset(_data(2), _chain(), budget_mb=1, copy_cache=False, progress=False)
    before = [c["image"].clone() for c in ds._cache]
    for _ in range(6):
        ds[0], ds[1]
    assert all(torch.equal(a, c["image"]) for a, c in zip(before, ds._cache, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"overflow": "swap"}, "cache_overflow"), ({"budget_mb": -1}, "cache_budget_mb")],
    ids=["unknown-overflow", "negative-budget"],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BudgetedCacheDataset(_data(1), _chain(), progress=False, **kwargs)


def test_default_budget_is_a_share_of_the_available_memory_per_local_rank(monkeypatch):
    available = available_memory_bytes()
    assert available > 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert cache_budget_bytes(None, 0.5) == pytest.approx(available / 8, rel=0.05)
    with pytest.raises(ValueError, match="cache_budget_fraction"):
        cache_budget_bytes(None, 1.5)


def test_item_nbytes_counts_tensors_and_arrays():
    item = {"a": torch.zeros(10, dtype=torch.float16), "b": [np.zeros(3, np.int32)], "c": "x"}
    assert item_nbytes(item) == 20 + 12


def test_fill_threads_split_torch_threads_between_the_fill_threads_and_restore_them():
    from mrivol.data.cache_budget import fill_threads

    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        with fill_threads(2) as per_worker:
            assert per_worker == 2 and torch.get_num_threads() == 2
        assert torch.get_num_threads() == 4
        with fill_threads(8) as per_worker:  # more fill threads than cores: one each
            assert per_worker == 1 and torch.get_num_threads() == 1
        with pytest.raises(RuntimeError), fill_threads(1):
            raise RuntimeError("a failing fill restores the setting too")
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)

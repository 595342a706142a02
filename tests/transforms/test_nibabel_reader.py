"""ThreadSafeNibabelReader: several threads share one reader and never mix up cases."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.data import CacheDataset, NibabelReader
from monai.transforms import Compose, LoadImaged

from mrivol.transforms import ThreadSafeNibabelReader

MODALITIES = ("t1", "t1ce", "t2", "flair")


def _case(root: Path, i: int) -> dict:
    """Case ``i``: modality ``m`` holds the constant ``10 * i + m``, the label ``i``."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    files = []
    for m, name in enumerate(MODALITIES):
        path = root / f"case{i}_{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.full((6, 5, 4), 10 * i + m, np.float32), affine), path)
        files.append(str(path))
    label = root / f"case{i}_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.full((6, 5, 4), i, np.uint8), affine), label)
    return {"image": files, "label": str(label), "case": i}


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("reader")
    return [_case(root, i) for i in range(24)]


def test_interleaved_calls_pair_each_image_with_its_own_files(cases):
    """Thread A reads four files, thread B one, then A extracts: MONAI's reader drops three."""

    def interleave(reader):
        four = reader.read(cases[0]["image"])
        reader.read(cases[1]["label"])  # another thread's call in between
        return reader.get_data(four)[0]

    assert interleave(NibabelReader()).shape == (6, 5, 4)  # one of 4 kept: MONAI issue #1025
    data = interleave(ThreadSafeNibabelReader())
    assert data.shape == (4, 6, 5, 4)
    np.testing.assert_array_equal(data[:, 0, 0, 0], [0, 1, 2, 3])


@pytest.mark.parametrize("workers", [2, 4], ids=["2-threads", "4-threads"])
def test_a_cache_filled_by_threads_holds_each_case_whole(cases, workers):
    load = LoadImaged(
        keys=["image", "label"], reader=ThreadSafeNibabelReader(), ensure_channel_first=True
    )
    dataset = CacheDataset(cases, Compose([load]), num_workers=workers, progress=False)
    for item in dataset:
        i = item["case"]
        assert item["image"].shape == (4, 6, 5, 4), f"case {i}"
        np.testing.assert_array_equal(item["image"][:, 0, 0, 0], [10 * i + m for m in range(4)])
        assert int(item["label"].max()) == i
        assert Path(item["image"].meta["filename_or_obj"]).name == f"case{i}_t1.nii.gz"

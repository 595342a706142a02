"""``mrivol infer`` outputs that need no network: BraTS 2023+ submission files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrivol.inference.infer import SUBMISSION_DIR, write_submission


def _label_map(path: Path, labels: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    data = np.zeros((6, 5, 4), dtype=np.uint8)
    for i, label in enumerate(labels):
        data[i + 1, 1:3, 1:3] = label
    affine = np.diag([-1.0, -1.0, 1.5, 1.0])
    affine[:3, 3] = (10.0, 20.0, -30.0)
    nib.save(nib.Nifti1Image(data, affine), path)
    return data, affine


@pytest.mark.parametrize(
    ("labels", "written"),
    [("brats2021", (1, 2, 4)), ("brats2023", (1, 2, 3))],
    ids=["2021-et4-relabelled", "2023-unchanged"],
)
def test_submission_is_case_id_with_2023_labels_on_the_same_grid(tmp_path, labels, written):
    data, affine = _label_map(tmp_path / "BraTS-GLI-00002-000_seg.nii.gz", written)
    (tmp_path / "BraTS-GLI-00002-000_prob_wt.nii.gz").write_bytes(b"not a label map")

    paths = write_submission(tmp_path, labels=labels)

    assert paths == [tmp_path / SUBMISSION_DIR / "BraTS-GLI-00002-000.nii.gz"]
    out = nib.load(paths[0])
    np.testing.assert_array_equal(out.affine, affine)
    values = np.asarray(out.dataobj)
    assert out.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(values[data == written[2]], 3)  # ET is 3 in 2023+ labels
    np.testing.assert_array_equal(values[data == 1], 1)
    np.testing.assert_array_equal(values[data == 2], 2)
    assert set(np.unique(values)) == {0, 1, 2, 3}
    assert sorted(p.name for p in (tmp_path / SUBMISSION_DIR).iterdir()) == [paths[0].name]

"""Atomic writes leave either the old file or the new one, never a partial one."""

from __future__ import annotations

import pytest

from mrivol.io import atomic_path, case_output_name, write_csv_atomic


def test_failed_write_keeps_previous_content_and_no_temp_file(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_csv_columns_from_first_row(tmp_path):
    path = write_csv_atomic(
        [{"case_id": "a", "dice": 0.5}, {"case_id": "b", "dice": 1.0}], tmp_path / "x.csv"
    )
    assert path.read_text().splitlines() == ["case_id,dice", "a,0.5", "b,1.0"]


@pytest.mark.parametrize(
    ("source", "case"),
    [
        ("/d/BraTS2021_00012/BraTS2021_00012_t1.nii.gz", "BraTS2021_00012"),
        (["/d/x/x_flair.nii.gz", "/d/x/x_t1.nii.gz"], "x"),
        ("/d/scan.nii", "scan"),
        ("/d/BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n.nii.gz", "BraTS-GLI-00000-000"),
        ("/d/BraTS-MET-00001-000-t2f.nii.gz", "BraTS-MET-00001-000"),
    ],
    ids=["brats-t1", "list-flair-first", "no-suffix", "brats2023-t1n", "brats2023-t2f"],
)
def test_case_output_name_strips_modality(source, case):
    assert case_output_name({"filename_or_obj": source}, None) == {"subject": case}

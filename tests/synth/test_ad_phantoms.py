"""AD-like phantoms: atrophy grows with class and session, folds are stratified by subject."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrivol.data import read_manifest
from mrivol.synth.ad_phantoms import generate_ad_phantoms, parse_class_ratio, render_ad_scan
from mrivol.synth.mni import load_mni_tissue_maps


def _ventricle_csf(image: np.ndarray) -> float:
    """Dark (CSF-like) voxels in a central box around the lateral ventricles."""
    maps = load_mni_tissue_maps(resolution=2)
    ijk = np.round(np.linalg.inv(maps.affine) @ [0, -12, 16, 1]).astype(int)[:3]
    box = image[tuple(slice(c - 10, c + 10) for c in ijk)]
    return float((box < 450).mean())


def test_ventricles_grow_with_severity():
    mild, _ = render_ad_scan(severity=0.0, anatomy_seed=3, scan_seed=4)
    severe, affine = render_ad_scan(severity=1.0, anatomy_seed=3, scan_seed=4)
    assert np.allclose(affine, load_mni_tissue_maps(resolution=2).affine)
    assert _ventricle_csf(severe) > 1.3 * _ventricle_csf(mild)


def test_same_seeds_give_the_same_scan():
    a, _ = render_ad_scan(severity=0.5, anatomy_seed=1, scan_seed=2)
    b, _ = render_ad_scan(severity=0.5, anatomy_seed=1, scan_seed=2)
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1:1:1", (1 / 3, 1 / 3, 1 / 3)), ("6:3:1", (0.6, 0.3, 0.1))],
    ids=["balanced", "imbalanced"],
)
def test_parse_class_ratio(text, expected):
    assert parse_class_ratio(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["1:1", "a:b:c", "-1:1:1"], ids=["two", "letters", "negative"])
def test_parse_class_ratio_rejects(text):
    with pytest.raises(ValueError, match="CN:MCI:AD"):
        parse_class_ratio(text)


def test_generate_writes_manifest_with_sessions_and_ratio(tmp_path: Path):
    manifest = generate_ad_phantoms(
        tmp_path, subjects=5, sessions=2, class_ratio="3:1:1", folds=2, seed=0
    )
    df = read_manifest(manifest)
    assert len(df) == 10 and df["subject_id"].nunique() == 5
    counts = df.drop_duplicates("subject_id")["diagnosis"].value_counts().to_dict()
    assert counts == {"CN": 3, "MCI": 1, "AD": 1}
    assert (df.groupby("subject_id")["fold"].nunique() == 1).all()
    assert not df["synthetic"].any()
    img = nib.load(df["t1"].iloc[0])
    assert img.shape == (99, 117, 110) and img.get_fdata().max() > 500  # full head, scaled

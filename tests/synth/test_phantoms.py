"""Tests of the synthetic BraTS-like phantoms (small 3 mm grids, 2 mm MNI maps: fast)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrivol.synth import phantoms
from mrivol.synth.mni import HeadLayers, head_fractions, load_head_model, tissue_fractions
from mrivol.synth.phantom_contrast import bias_field
from mrivol.synth.phantom_difficulty import best_threshold_dice, threshold_difficulty
from mrivol.synth.phantom_render import centred_affine, render_brats_case, rotation_matrix
from mrivol.synth.phantoms import case_files, generate_brats_phantoms

SHAPE = (64, 64, 48)
SPACING = (3.0, 3.0, 3.0)
MODS = ("t1", "t1ce", "t2", "flair")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("phantoms")
    return generate_brats_phantoms(
        out, n_cases=2, seed=3, shape=SHAPE, spacing=SPACING, progress=False
    )


def _load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def _medians(case_dir: Path) -> dict[str, dict[str, float]]:
    """Median intensity per tissue class and tumour label, per modality."""
    files = case_files(case_dir)
    tissue, seg = _load(files["tissue"]), _load(files["seg"])
    masks = {"csf": tissue == 1, "gm": tissue == 2, "wm": tissue == 3, "skull": tissue == 4}
    masks |= {"scalp": tissue == 5, "oedema": seg == 2, "et": seg == 4, "net": seg == 1}
    out = {}
    for m in MODS:
        image = _load(files[m]).astype(np.float64)
        out[m] = {k: float(np.median(image[v])) for k, v in masks.items()}
    return out


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed_b", "index_b", "same"),
    [(0, 0, True), (1, 0, False), (0, 1, False)],
    ids=["same-seed-identical", "other-seed-differs", "other-case-differs"],
)
def test_render_is_deterministic(seed_b: int, index_b: int, same: bool) -> None:
    a = render_brats_case(0, seed=0, shape=SHAPE, spacing=SPACING)
    b = render_brats_case(index_b, seed=seed_b, shape=SHAPE, spacing=SPACING)
    equal = all(np.array_equal(a.images[m], b.images[m]) for m in MODS)
    assert equal == same
    assert np.array_equal(a.seg, b.seg) == same


# --- labels and contrasts --------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1], ids=["case0", "case1"])
def test_every_label_present_and_only_brats_labels(dataset: list[Path], index: int) -> None:
    seg = _load(case_files(dataset[index])["seg"])
    assert seg.dtype == np.uint8
    assert set(np.unique(seg).tolist()) == {0, 1, 2, 4}


ORDERINGS = {
    "t1-wm>gm>csf": lambda d: d["t1"]["wm"] > d["t1"]["gm"] > d["t1"]["csf"],
    "t2-csf>gm>wm": lambda d: d["t2"]["csf"] > d["t2"]["gm"] > d["t2"]["wm"],
    "flair-csf-suppressed": lambda d: d["flair"]["csf"] < 0.5 * d["flair"]["wm"],
    "flair-oedema>wm": lambda d: d["flair"]["oedema"] > d["flair"]["wm"],
    "t1ce-et-enhances": lambda d: (
        d["t1ce"]["et"] / d["t1ce"]["wm"] > 1.3 * d["t1"]["et"] / d["t1"]["wm"]
    ),
    "skull-dark-everywhere": lambda d: all(d[m]["skull"] < 0.5 * d[m]["gm"] for m in MODS),
    "t1-scalp-fat-bright": lambda d: d["t1"]["scalp"] > d["t1"]["gm"],
    "t2-necrosis-bright": lambda d: d["t2"]["net"] > d["t2"]["wm"],
}


@pytest.mark.parametrize("check", list(ORDERINGS), ids=list(ORDERINGS))
def test_modality_contrasts(dataset: list[Path], check: str) -> None:
    for case_dir in dataset:
        medians = _medians(case_dir)
        assert ORDERINGS[check](medians), (case_dir.name, medians)


# --- truth files -----------------------------------------------------------------------------


def test_brain_mask_matches_tissue_map(dataset: list[Path]) -> None:
    for case_dir in dataset:
        files = case_files(case_dir)
        mask = _load(files["brainmask"]) > 0
        brain = np.isin(_load(files["tissue"]), [1, 2, 3, 6])
        dice = 2.0 * (mask & brain).sum() / (mask.sum() + brain.sum())
        assert dice > 0.9, (case_dir.name, dice)
        assert mask[_load(files["seg"]) > 0].all()  # the tumour is inside the brain mask


@pytest.mark.parametrize("mod", MODS, ids=MODS)
def test_bias_is_bounded_smooth_and_explains_the_image(dataset: list[Path], mod: str) -> None:
    files = case_files(dataset[0])
    bias = _load(files[f"bias_{mod}"])
    assert bias.dtype == np.float32
    assert bias.min() >= 0.68 and bias.max() <= 1.32
    assert bias.max() - bias.min() > 0.1  # not flat
    steps = max(np.abs(np.diff(bias, axis=a)).max() for a in range(3))
    assert steps < 0.03  # smooth: at most a few % per 3 mm voxel
    # image / bias is bias-free: WM medians in the two halves of the head agree better.
    image = _load(files[mod]).astype(np.float64)
    wm = _load(files["tissue"]) == 3
    left, right = wm.copy(), wm.copy()
    left[SHAPE[0] // 2 :], right[: SHAPE[0] // 2] = False, False
    corrected = image / bias

    def spread(x: np.ndarray) -> float:
        return abs(np.median(x[left]) / np.median(x[right]) - 1.0)

    assert spread(corrected) < 0.05


def test_pose_json_is_a_rigid_transform(dataset: list[Path]) -> None:
    for case_dir in dataset:
        pose = json.loads(case_files(case_dir)["pose"].read_text())
        matrix = np.asarray(pose["mni_to_case_world"])
        rot = matrix[:3, :3]
        assert np.allclose(rot.T @ rot, np.eye(3), atol=1e-9)
        assert np.isclose(np.linalg.det(rot), 1.0)
        assert np.allclose(matrix[3], [0, 0, 0, 1])
        assert np.allclose(rot, rotation_matrix(tuple(pose["rotation_deg"])))
        assert max(map(abs, pose["rotation_deg"])) <= 10.0
        assert max(map(abs, pose["translation_mm"])) <= 10.0
        assert pose["seed"] == 3 and pose["generator_version"]
        assert pose["contrasts"]["t2"]["csf"] > pose["contrasts"]["t2"]["wm"]


def test_grid_affine_dtypes_and_qform(dataset: list[Path]) -> None:
    expected = centred_affine(SHAPE, SPACING)
    assert np.allclose(expected[:3, :3] @ (np.asarray(SHAPE) - 1) / 2 + expected[:3, 3], 0)
    dtypes = dict.fromkeys(MODS, np.int16) | {"seg": np.uint8, "brainmask": np.uint8}
    dtypes |= {"tissue": np.uint8} | {f"bias_{m}": np.float32 for m in MODS}
    for role, dtype in dtypes.items():
        image = nib.load(case_files(dataset[0])[role])
        assert image.shape == SHAPE, role
        assert image.get_data_dtype() == dtype, role
        assert np.allclose(image.affine, expected), role
        qform, qcode = image.get_qform(coded=True)
        sform, scode = image.get_sform(coded=True)
        assert qcode == 1 and scode == 1 and np.allclose(qform, sform), role
    params = json.loads((dataset[0].parent / "phantoms.json").read_text())
    assert params["shape"] == list(SHAPE) and params["seed"] == 3


# --- resumable and atomic --------------------------------------------------------------------


def test_resume_skips_complete_cases(tmp_path: Path) -> None:
    first = generate_brats_phantoms(
        tmp_path, n_cases=1, shape=SHAPE, spacing=SPACING, progress=False
    )
    t1 = case_files(first[0])["t1"]
    stamp = t1.stat().st_mtime_ns
    dirs = generate_brats_phantoms(
        tmp_path, n_cases=2, shape=SHAPE, spacing=SPACING, progress=False
    )
    assert [d.name for d in dirs] == ["phantom_00000", "phantom_00001"]
    assert t1.stat().st_mtime_ns == stamp  # not rewritten
    assert all(p.is_file() for p in case_files(dirs[1]).values())
    assert json.loads((tmp_path / "phantoms.json").read_text())["n_cases"] == 2


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"seed": 9}, ValueError), ({"shape": (64, 64, 40)}, ValueError)],
    ids=["other-seed", "other-shape"],
)
def test_resume_refuses_other_parameters(tmp_path: Path, kwargs: dict, error: type) -> None:
    (tmp_path / "phantoms.json").write_text(
        json.dumps({"generator_version": "1.0.0", "seed": 0, "shape": list(SHAPE),
                    "spacing": list(SPACING), "prefix": "phantom", "n_cases": 1})
    )  # fmt: skip
    args = {"n_cases": 1, "shape": SHAPE, "spacing": SPACING, "progress": False} | kwargs
    with pytest.raises(error, match="other parameters"):
        generate_brats_phantoms(tmp_path, **args)


def test_incomplete_case_directory_is_reported(tmp_path: Path) -> None:
    (tmp_path / "phantom_00000").mkdir()
    with pytest.raises(FileExistsError, match="phantom_00000"):
        generate_brats_phantoms(tmp_path, n_cases=1, shape=SHAPE, spacing=SPACING, progress=False)


def test_interrupted_write_leaves_no_partial_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = phantoms._save
    calls = {"n": 0}

    def failing_save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        real_save(array, affine, path)

    monkeypatch.setattr(phantoms, "_save", failing_save)
    with pytest.raises(RuntimeError, match=r"phantom_00000: OSError: disk full"):
        generate_brats_phantoms(tmp_path, n_cases=1, shape=SHAPE, spacing=SPACING, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phantoms.json"]


# --- head model and bias field ---------------------------------------------------------------


def test_head_layers_in_order_and_fractions_sum_to_one() -> None:
    layers = HeadLayers(csf_mm=2.0, skull_mm=6.0, scalp_mm=5.0)
    distance = np.array([-10.0, 1.0, 5.0, 10.5, 30.0])
    fractions = head_fractions(distance, layers=layers, ramp_mm=1.0)
    dominant = [max(fractions, key=lambda k, i=i: fractions[k][i]) for i in range(5)]
    assert dominant == ["brain", "csf_shell", "skull", "scalp", "background"]
    head = load_head_model(resolution=2)
    full = tissue_fractions(head.tissues.gm, head.tissues.wm, head.distance, ramp_mm=2.0)
    assert full.shape == (6, *head.distance.shape)
    assert np.allclose(full.sum(0), 1.0, atol=1e-5) and full.min() >= -1e-6


@pytest.mark.parametrize("bad", ["csf_mm", "skull_mm", "scalp_mm"], ids=str)
def test_head_layers_reject_non_positive_thickness(bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        HeadLayers(**{bad: 0.0})


@pytest.mark.parametrize("seed", [0, 1, 2], ids=["s0", "s1", "s2"])
def test_bias_field_bounds(seed: int) -> None:
    field = bias_field((30, 40, 20), rng=np.random.default_rng(seed))
    assert field.min() >= 0.7 - 1e-6 and field.max() <= 1.3 + 1e-6
    assert field.max() - field.min() >= 0.15  # max |field - 1| is at least 0.15


# --- threshold difficulty --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "positive", "expected"),
    [
        ([0, 1, 5, 6], [0, 0, 1, 1], (1.0, ">", 1.0)),
        ([9, 8, 1, 0], [0, 0, 1, 1], (1.0, "<", 8.0)),
        ([0, 0, 0, 0, 7, 7], [1, 1, 0, 0, 0, 0], (2 / 3, "<", 7.0)),
        ([3, 3], [0, 0], (0.0, ">", float("nan"))),
    ],
    ids=["bright-region", "dark-region", "half-overlap", "no-positive"],
)
def test_best_threshold_dice(values: list, positive: list, expected: tuple) -> None:
    dice, direction, threshold = best_threshold_dice(np.array(values), np.array(positive, bool))
    assert dice == pytest.approx(expected[0])
    assert direction == expected[1]
    assert threshold == pytest.approx(expected[2], nan_ok=True)


def _hand_made_case(root: Path) -> Path:
    """ET bright on T1ce (perfect split), WT on FLAIR (perfect), TC dark on T1 with decoys."""
    case_dir = root / "hand_00000"
    (case_dir / "truth").mkdir(parents=True)
    seg = np.zeros((10, 10, 10), dtype=np.uint8)
    seg[2:6, 2:6, 2:6] = 1  # 64 voxels of TC
    seg[3:5, 3:5, 3:5] = 4  # 8 voxels of ET
    seg[6:9, 6:9, 6:9] = 2  # oedema, 27 voxels
    t1 = np.full(seg.shape, 100, dtype=np.int16)
    t1[seg == 1] = 10
    t1[seg == 4] = 10
    t1[0, :4, :4] = 10  # 16 non-TC voxels as dark as TC: TC Dice 2*64 / (80 + 64) = 8/9 > FLAIR's
    t1ce = np.where(seg == 4, 500, 100).astype(np.int16)
    images = {"t1": t1, "t1ce": t1ce, "t2": np.full(seg.shape, 50, np.int16)}
    images["flair"] = np.where(seg > 0, 300, 100).astype(np.int16)  # WT perfect on FLAIR
    affine = np.eye(4)
    for name, array in images.items():
        nib.save(nib.Nifti1Image(array, affine), case_dir / f"hand_00000_{name}.nii.gz")
    nib.save(nib.Nifti1Image(seg, affine), case_dir / "hand_00000_seg.nii.gz")
    mask = np.ones(seg.shape, dtype=np.uint8)
    nib.save(nib.Nifti1Image(mask, affine), case_dir / "truth" / "hand_00000_brainmask.nii.gz")
    return case_dir


def test_threshold_difficulty_known_answer(tmp_path: Path) -> None:
    table = threshold_difficulty([_hand_made_case(tmp_path)]).set_index("region")
    assert table.loc["ET", "modality"] == "t1ce" and table.loc["ET", "dice"] == pytest.approx(1.0)
    assert table.loc["ET", "direction"] == ">" and table.loc["ET", "threshold"] == 100
    assert table.loc["TC", "modality"] == "t1" and table.loc["TC", "direction"] == "<"
    assert table.loc["TC", "dice"] == pytest.approx(8 / 9)
    assert table.loc["TC", "dice_flair"] == pytest.approx(2 * 64 / (91 + 64))
    assert table.loc["WT", "modality"] == "flair" and table.loc["WT", "dice"] == pytest.approx(1.0)
    assert table.loc["WT", "dice_t2"] == 0.0
    assert table.loc["ET", "n_voxels"] == 8 and table.loc["TC", "n_voxels"] == 64


def test_threshold_difficulty_names_missing_file(tmp_path: Path) -> None:
    case_dir = _hand_made_case(tmp_path)
    (case_dir / "hand_00000_t2.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="hand_00000.*t2"):
        threshold_difficulty([case_dir])


def test_phantoms_are_not_trivially_thresholded(dataset: list[Path]) -> None:
    table = threshold_difficulty(dataset).set_index("region")
    assert (table["dice"] < 0.9).all(), table


@pytest.mark.slow
def test_cases_do_not_depend_on_workers(tmp_path: Path) -> None:
    kwargs = {"n_cases": 2, "shape": SHAPE, "spacing": SPACING, "progress": False}
    serial = generate_brats_phantoms(tmp_path / "serial", workers=1, **kwargs)
    parallel = generate_brats_phantoms(tmp_path / "parallel", workers=2, **kwargs)
    for a, b in zip(serial, parallel, strict=True):
        for role in ("t1", "flair", "seg", "tissue"):
            assert np.array_equal(_load(case_files(a)[role]), _load(case_files(b)[role])), role

"""`mrivol infer` at scale: `--shard i/n` writes every case once, a re-run skips finished cases,
16-bit probability maps, the background writer."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrivol.cli import main
from mrivol.inference.background_writer import BackgroundWriter
from mrivol.inference.infer import infer
from mrivol.inference.save_case_outputs import case_outputs
from mrivol.inference.shard import Shard
from tests.conftest import train_tiny_brats

REGIONS = ("tc", "wt", "et")


@pytest.fixture(scope="module")
def trained(tiny_brats_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """One epoch of brats_seg on the tiny cases (32^3 patches); (result, tracking uri)."""
    return train_tiny_brats(tmp_path_factory, tiny_brats_manifest)


@pytest.fixture(scope="module")
def case_ids(tiny_brats_manifest: Path) -> list[str]:
    with tiny_brats_manifest.open() as f:
        return sorted(row["case_id"] for row in csv.DictReader(f))


def _infer(trained, manifest: Path, out: Path, **kwargs) -> list[str]:
    result, uri = trained
    written = infer(
        bundle="brats_seg", run=result.run_id, input=manifest, out=out, tracking_uri=uri, **kwargs
    )
    return [p.name[: -len("_seg.nii.gz")] for p in written]


def _segmented(out: Path) -> list[str]:
    return sorted(p.name[: -len("_seg.nii.gz")] for p in out.glob("*_seg.nii.gz"))


@pytest.fixture(scope="module")
def sharded(trained, tiny_brats_manifest: Path, tmp_path_factory) -> dict:
    """Shard 0/2 then shard 1/2 (the second through the CLI) into one folder."""
    out = tmp_path_factory.mktemp("sharded")
    first = _infer(trained, tiny_brats_manifest, out, shard="0/2")
    after_first = _segmented(out)
    _, uri = trained
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        argv = ["infer", "--run", trained[0].run_id, "--input", str(tiny_brats_manifest),
                "--out", str(out), "--shard", "1/2"]  # fmt: skip
        assert main(argv) == 0
    second = Shard(1, 2).select([{"case_id": c} for c in _segmented(out)])
    return {"out": out, "first": first, "after_first": after_first,
            "second": [d["case_id"] for d in second]}  # fmt: skip


def test_two_shards_write_every_case_exactly_once(sharded, case_ids):
    first, out = sharded["first"], sharded["out"]
    assert len(first) == 3 and sharded["after_first"] == sorted(first)  # shard 0 wrote only its own
    second = sorted(set(_segmented(out)) - set(first))
    assert not set(first) & set(second) and sorted(first + second) == case_ids
    for case in case_ids:
        assert all(p.is_file() for p in case_outputs(out, case, regions=REGIONS, uncertainty=False))
    assert not list(out.glob(".*.nii.gz*"))  # no temporary file left behind
    with (out / "volumes.csv").open() as f:
        assert sorted(row["case"] for row in csv.DictReader(f)) == case_ids  # all shards' cases


def test_rerun_segments_only_the_unfinished_case(
    sharded, trained, tiny_brats_manifest, case_ids, tmp_path, capsys
):
    out = tmp_path / "out"
    shutil.copytree(sharded["out"], out)  # copy2: mtimes kept
    killed = case_ids[2]
    (out / f"{killed}_seg.nii.gz").unlink()  # killed after its maps, before its label map
    stale = out / f".{killed}_seg.nii.gz.abc123.nii.gz"
    stale.write_bytes(b"half a file")
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")}
    capsys.readouterr()

    cases = _infer(trained, tiny_brats_manifest, out)

    assert "skipping 5 finished cases" in capsys.readouterr().out
    assert cases == case_ids and _segmented(out) == case_ids and not stale.exists()
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")}
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == sorted(p.name for p in case_outputs(out, killed, regions=REGIONS,
                                                          uncertainty=False))  # fmt: skip
    seg = nib.load(out / f"{killed}_seg.nii.gz")
    reference = nib.load(sharded["out"] / f"{killed}_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(seg.dataobj), np.asarray(reference.dataobj))

    capsys.readouterr()
    assert _infer(trained, tiny_brats_manifest, out, shard="1/2") == sharded["second"]
    assert "skipping 3 finished cases" in capsys.readouterr().out  # nothing left: no inference


@pytest.mark.parametrize("mc_samples", [1, 2], ids=["deterministic", "mc2-uncertainty"])
def test_uint16_maps_are_half_size_and_match_float32(
    trained, tiny_brats_manifest, case_ids, tmp_path, mc_samples
):
    kinds = ("prob",) if mc_samples == 1 else ("prob", "entropy", "mi")
    one = {"shard": f"0/{len(case_ids)}", "mc_samples": mc_samples}  # the first case only
    assert _infer(trained, tiny_brats_manifest, tmp_path / "f32", **one) == case_ids[:1]
    _infer(trained, tiny_brats_manifest, tmp_path / "u16", prob_dtype="uint16", **one)
    case = case_ids[0]
    for kind in kinds:
        for region in REGIONS:
            name = f"{case}_{kind}_{region}.nii.gz"
            f32, u16 = nib.load(tmp_path / "f32" / name), nib.load(tmp_path / "u16" / name)
            assert f32.get_data_dtype() == np.float32 and u16.get_data_dtype() == np.uint16
            a, b = f32.get_fdata(), u16.get_fdata()
            assert np.unique(a).size > 10  # a real map, not a constant
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-4)
            np.testing.assert_allclose(u16.affine, f32.affine)
            raw = np.prod(f32.shape)
            assert u16.dataobj.get_unscaled().nbytes == 2 * raw  # half of float32's 4 bytes
    seg32, seg16 = (nib.load(tmp_path / d / f"{case}_seg.nii.gz") for d in ("f32", "u16"))
    assert seg16.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(seg16.dataobj), np.asarray(seg32.dataobj))


def test_background_writer_writes_as_the_engine_thread(trained, tiny_brats_manifest, tmp_path):
    one = {"shard": "1/6", "overrides": {"writer_threads": 0}}
    (case,) = _infer(trained, tiny_brats_manifest, tmp_path / "sync", **one)
    _infer(trained, tiny_brats_manifest, tmp_path / "bg", shard="1/6")  # 2 threads (default)
    for path in case_outputs(tmp_path / "sync", case, regions=REGIONS, uncertainty=False):
        sync, bg = nib.load(path), nib.load(tmp_path / "bg" / path.name)
        np.testing.assert_array_equal(np.asarray(bg.dataobj), np.asarray(sync.dataobj))
        np.testing.assert_array_equal(bg.affine, sync.affine)


@pytest.mark.parametrize(
    "bad", ["2/2", "a/b", "0/0", "-1/2", "1", "1/2/3", ""], ids=lambda b: repr(b)
)
def test_bad_shard_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as err:
        main(["infer", "--run", "x", "--input", "x", "--out", "x", "--shard", bad])
    assert err.value.code == 2
    assert "--shard" in capsys.readouterr().err


@pytest.mark.parametrize("count", [1, 2, 3, 7], ids=lambda n: f"n{n}")
def test_shards_partition_the_cases_whatever_the_input_order(count):
    cases = [f"case_{i:02d}" for i in range(6)]
    items = [{"case_id": c} for c in reversed(cases)]
    parts = [[d["case_id"] for d in Shard(i, count).select(items)] for i in range(count)]
    assert sorted(sum(parts, [])) == cases  # every case once
    shuffled = [{"case_id": c} for c in np.random.default_rng(0).permutation(cases)]
    assert parts == [[d["case_id"] for d in Shard(i, count).select(shuffled)] for i in range(count)]


def test_writer_reraises_at_the_end_naming_the_failed_case():
    def write(case: str) -> None:
        if case == "case_b":
            raise OSError("disk full")
        done.append(case)

    done: list[str] = []
    writer = BackgroundWriter(workers=2)
    for case in ("case_a", "case_b", "case_c"):
        writer.submit(case, write, case)
    with pytest.raises(RuntimeError, match=r"1 case\(s\) failed: case case_b: OSError: disk full"):
        writer.wait()
    assert sorted(done) == ["case_a", "case_c"]  # the others are written


@pytest.mark.parametrize("workers", [-1, 3], ids=lambda w: f"workers{w}")
def test_writer_is_bounded_to_two_threads(workers):
    with pytest.raises(ValueError, match="workers must be 0..2"):
        BackgroundWriter(workers=workers)


def _case_tensors(affine: np.ndarray) -> dict:
    from monai.data import MetaTensor

    prob = np.random.default_rng(0).uniform(size=(3, 6, 5, 4)).astype(np.float32)
    pred = (prob[1:2] > 0.5).astype(np.float32) * 2
    return {"prob": MetaTensor(prob, affine=affine), "pred": MetaTensor(pred, affine=affine),
            "case_id": "case_x"}  # fmt: skip


def test_case_outputs_are_written_label_map_last_and_atomically(tmp_path, monkeypatch):
    from mrivol.inference.save_case_outputs import SaveCaseOutputsd

    affine = np.array([[-1.0, 0, 0, 10], [0, 2.0, 0, -5], [0, 0, 1.5, 3], [0, 0, 0, 1]])
    data = _case_tensors(affine)
    saved: list[str] = []
    real_save = nib.save

    def save(img, path):  # the third file (a map) fails: the case must not look finished
        saved.append(Path(path).name)
        if len(saved) == 3:
            raise OSError("disk full")
        real_save(img, path)

    monkeypatch.setattr(nib, "save", save)
    writer = BackgroundWriter(workers=2)
    SaveCaseOutputsd(["prob"], regions=REGIONS, output_dir=tmp_path, writer=writer)(data)
    with pytest.raises(RuntimeError, match="case case_x: OSError: disk full"):
        writer.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case_x_prob_tc.nii.gz",
                                                          "case_x_prob_wt.nii.gz"]  # fmt: skip
    assert all(name.startswith(".") for name in saved)  # through a temporary name

    monkeypatch.setattr(nib, "save", real_save)
    SaveCaseOutputsd(["prob"], regions=REGIONS, output_dir=tmp_path)(data)  # synchronous
    seg = nib.load(tmp_path / "case_x_seg.nii.gz")
    assert seg.get_data_dtype() == np.uint8 and seg.shape == (6, 5, 4)
    np.testing.assert_array_equal(np.asarray(seg.dataobj), data["pred"][0].numpy())
    np.testing.assert_allclose(seg.affine, affine)
    wt = nib.load(tmp_path / "case_x_prob_wt.nii.gz")
    np.testing.assert_allclose(wt.get_fdata(), data["prob"][1].numpy(), atol=1e-7)
    np.testing.assert_allclose(wt.affine, affine)

"""Where bundles and the workspace are found: MRIVOL_ROOT, the checkout, the installed copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrivol import paths
from mrivol.synth import default_manifest, phantom_dir

CHECKOUT = Path(__file__).resolve().parents[1]


def test_the_checkout_wins_from_inside_it(monkeypatch):
    monkeypatch.delenv("MRIVOL_ROOT", raising=False)
    monkeypatch.chdir(CHECKOUT / "mrivol")
    assert paths.checkout_root() == CHECKOUT
    assert paths.bundles_root() == CHECKOUT / "bundles"
    assert paths.shared_dir() == CHECKOUT / "bundles" / "shared"


def test_mrivol_root_names_the_workspace(monkeypatch, tmp_path):
    (tmp_path / "bundles").symlink_to(CHECKOUT / "bundles")
    monkeypatch.setenv("MRIVOL_ROOT", str(tmp_path))
    monkeypatch.delenv("MRIVOL_CACHE", raising=False)
    monkeypatch.delenv("MRIVOL_RUNS", raising=False)
    assert paths.project_root() == tmp_path.resolve()
    assert paths.cache_dir() == tmp_path.resolve() / ".cache"
    assert paths.runs_dir() == tmp_path.resolve() / "runs"
    assert "brats_seg" in paths.available_bundles()


def test_mrivol_root_without_bundles_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("MRIVOL_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="has no bundles/ folder"):
        paths.bundles_root()


def test_outside_a_checkout_the_workspace_is_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("MRIVOL_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "mrivol" / "paths.py"))
    assert paths.checkout_root() is None
    assert paths.project_root() == tmp_path.resolve()


def test_the_default_manifest_follows_mrivol_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MRIVOL_CACHE", str(tmp_path / "c"))
    assert (
        phantom_dir("brats_seg", "cpu") == (tmp_path / "c").resolve() / "phantoms" / "brats_seg-cpu"
    )
    assert default_manifest("ad_cls", "gpu").endswith("c/phantoms/ad_cls-gpu/manifest.csv")


def test_unknown_bundle_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match="available bundles: .*brats_seg"):
        paths.bundle_dir("nope")

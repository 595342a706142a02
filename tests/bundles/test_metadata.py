"""Every bundle's metadata.json passes MONAI's verify_metadata offline (meta_schema.json)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mrivol.paths import project_root

BUNDLES = sorted(
    p.parent.parent.name for p in project_root().glob("bundles/*/configs/metadata.json")
)


def test_every_bundle_is_checked():
    assert {"brats_seg", "preprocess", "ad_cls", "dcgan_aug", "brats_multitask"} <= set(BUNDLES)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_verifies_offline(bundle: str):
    root = project_root() / "bundles"
    cmd = [sys.executable, "-m", "monai.bundle", "verify_metadata"]
    cmd += ["--meta_file", str(root / bundle / "configs" / "metadata.json")]
    cmd += ["--filepath", str(root / "meta_schema.json")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "metadata is verified with no error" in out.stderr + out.stdout

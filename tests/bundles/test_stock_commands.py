"""Each bundle's docs/README.md stock ``python -m monai.bundle run`` command trains one epoch.

The command is read from the docs (the fenced block that starts with it), so the docs stay
true to the configs: only the manifest is replaced by the tests' tiny data set and tiny-size
overrides are appended. Run from the repository root, as the docs say.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

from mrivol.paths import bundle_dir, checkout_root
from tests.conftest import AD_CLS_TINY_OVERRIDES, MULTITASK_TINY_OVERRIDES, TINY_OVERRIDES

DCGAN_TINY = {"gan_size": [16, 24, 16], "g_channels": [32, 16], "d_channels": [8, 16],
              "num_samples": 2, "batch_size": 2, "steps_per_epoch": 2}  # fmt: skip
CASES = {
    "brats_seg": ("tiny_brats_manifest", TINY_OVERRIDES, "model_final.pt"),
    "brats_multitask": ("tiny_brats_manifest", MULTITASK_TINY_OVERRIDES, "model_final.pt"),
    "ad_cls": ("tiny_ad_manifest", AD_CLS_TINY_OVERRIDES, "model_final.pt"),
    "dcgan_aug": ("tiny_ad_manifest", DCGAN_TINY, "model_final.pt"),
}


def docs_command(bundle: str) -> list[str]:
    """The stock command of ``bundles/<bundle>/docs/README.md``, as argv."""
    text = (bundle_dir(bundle) / "docs" / "README.md").read_text()
    found = re.search(r"^python -m monai\.bundle run .*?(?=\n```)", text, flags=re.M | re.S)
    assert found, f"{bundle}: docs/README.md has no `python -m monai.bundle run` command"
    return shlex.split(found.group(0).replace("\\\n", " "))


def test_docs_commands_list_the_files_mrivol_train_merges():
    from mrivol.training import config_files, default_network

    root = checkout_root()
    for bundle in CASES:
        argv = docs_command(bundle)
        listed = json.loads(argv[argv.index("--config_file") + 1].replace("'", '"'))
        expected = config_files(bundle, "train", profile="cpu", net=default_network(bundle))
        assert [root / f for f in listed] == expected, bundle


@pytest.mark.parametrize(
    "bundle",
    [
        "brats_seg",
        pytest.param("brats_multitask", marks=pytest.mark.slow),
        pytest.param("ad_cls", marks=pytest.mark.slow),
        pytest.param("dcgan_aug", marks=pytest.mark.slow),
    ],
)
def test_docs_command_trains_one_epoch(bundle, request, isolated_store):
    fixture, overrides, weights = CASES[bundle]
    manifest = request.getfixturevalue(fixture)
    argv = docs_command(bundle)
    argv[argv.index("--manifest") + 1] = str(manifest)
    argv += ["--output_dir", str(isolated_store / "stock")]
    for key, value in overrides.items():
        argv += [f"--{key}", json.dumps(value)]
    assert argv[:4] == ["python", "-m", "monai.bundle", "run"]
    out = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=checkout_root(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (isolated_store / "stock" / "checkpoints" / weights).is_file()

"""TorchScript and ONNX exports of the bundle's networks match PyTorch on a 64^3 input, keep
their sizes free, and a failed parity check fails the export. DynUNet's are slow-marked (its
exports take ~10-15 s each on 2 cores); UNet's run in the fast suite."""

from __future__ import annotations

import pytest
import torch

from mrivol.tracking.export import ExportParityError, export_network, load_exported
from mrivol.training.workflow import build_network

# a 4-level nnU-Net-style plan (the planner's filters min(32 * 2^i, 320), halved to stay quick)
PLANS = {
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
    "kernel_sizes": [[3, 3, 3]] * 4,
    "filters": [16, 32, 64, 128],
    "patch_size": [64, 64, 64],
    "target_spacing": [2, 2, 2],
}
CASES = [
    pytest.param("unet", "torchscript", id="unet-torchscript"),
    pytest.param("unet", "onnx", id="unet-onnx"),
    pytest.param("dynunet", "torchscript", id="dynunet-torchscript", marks=pytest.mark.slow),
    pytest.param("dynunet", "onnx", id="dynunet-onnx", marks=pytest.mark.slow),
]


def _network(net: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("brats_seg", net, overrides={"plans": PLANS} if net == "dynunet" else {})


@pytest.mark.parametrize(("net", "fmt"), CASES)
def test_export_matches_pytorch_on_64_cubed_and_on_other_sizes(tmp_path, net, fmt):
    result = export_network(_network(net), fmt, tmp_path / f"{net}.{fmt}", in_channels=4,
                            metadata={"net": net})  # fmt: skip
    assert set(result.diffs) == {"1x4x64x64x64", "2x4x32x32x32"}  # batch and size free
    assert result.max_abs_diff <= 1e-4
    # the file alone (no mrivol network code) gives the logits of another size too
    x = torch.randn(1, 4, 48, 64, 32)
    with torch.no_grad():
        expected = _network(net).eval()(x).numpy()
    got = load_exported(result.path, fmt)(x.numpy())
    assert got.shape == (1, 3, 48, 64, 32)
    assert abs(got - expected).max() <= 1e-4


def test_torchscript_file_carries_the_model_settings(tmp_path):
    extra = {"metadata.json": ""}
    export_network(_network("unet"), "torchscript", tmp_path / "u.ts", in_channels=4,
                   size=(32, 32, 32), metadata={"net": "unet", "profile": "cpu"})  # fmt: skip
    torch.jit.load(str(tmp_path / "u.ts"), _extra_files=extra)
    assert b'"profile": "cpu"' in extra["metadata.json"]


def test_a_parity_failure_fails_the_export(tmp_path):
    with pytest.raises(ExportParityError, match="differs from PyTorch by"):
        export_network(_network("unet"), "torchscript", tmp_path / "u.ts", in_channels=4,
                       size=(32, 32, 32), tolerance=-1.0)  # fmt: skip

"""MONAI's UNETR and Swin UNETR as the bundles reference them: 4-channel BraTS input, dropout.

The bundles use ``monai.networks.nets.UNETR`` / ``SwinUNETR`` directly; these tests pin the
constructor arguments that work with MONAI 1.6 (Swin UNETR has no ``img_size`` any more) and
check that MC dropout finds their dropout layers.
"""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNETR, SwinUNETR

from mrivol.inference import enable_mc_dropout, mc_predict


def _dropout_rates(net: torch.nn.Module) -> set[float]:
    return {m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)}


def test_unetr_brats_configuration_builds() -> None:
    net = UNETR(
        in_channels=4, out_channels=3, img_size=(128, 128, 128), feature_size=16,
        hidden_size=768, mlp_dim=3072, num_heads=12, proj_type="conv", norm_name="instance",
        dropout_rate=0.1,
    )  # fmt: skip
    assert 0.1 in _dropout_rates(net)
    assert enable_mc_dropout(net).num_dropout_layers > 0


def test_swin_unetr_brats_configuration_builds() -> None:
    net = SwinUNETR(
        in_channels=4, out_channels=3, feature_size=48, drop_rate=0.1, attn_drop_rate=0.1,
        dropout_path_rate=0.1, use_checkpoint=True,
    )  # fmt: skip
    assert 0.1 in _dropout_rates(net)
    with pytest.raises(TypeError):
        SwinUNETR(img_size=(128, 128, 128), in_channels=4, out_channels=3)  # removed in 1.5


def test_small_unetr_runs_with_mc_dropout() -> None:
    net = UNETR(
        in_channels=4, out_channels=3, img_size=32, feature_size=8, hidden_size=96,
        mlp_dim=192, num_heads=4, dropout_rate=0.1,
    )  # fmt: skip
    out = mc_predict(net, torch.randn(1, 4, 32, 32, 32), samples=2)
    assert out.shape == (2, 1, 3, 32, 32, 32)
    assert not torch.allclose(out[0], out[1])


@pytest.mark.slow
def test_small_swin_unetr_runs_with_mc_dropout() -> None:
    # Swin UNETR downsamples 32x; with instance norm the input must be >= 64 per axis
    net = SwinUNETR(in_channels=4, out_channels=3, feature_size=12, drop_rate=0.1)
    out = mc_predict(net, torch.randn(1, 4, 64, 64, 64), samples=2)
    assert out.shape == (2, 1, 3, 64, 64, 64)
    assert not torch.allclose(out[0], out[1])

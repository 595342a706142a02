"""Every network overlay of brats_seg builds from the merged config, trains one step and infers.

The full trainings per network are run with `make train BUNDLE=brats_seg NET=<net>`; here each
overlay is checked the way the trainer uses it: training-mode output through the configured
loss (deep supervision included), gradients, and the eval-mode output shape.
"""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ConfigParser

from mrivol.paths import bundle_dir
from mrivol.planning.plans import plan_manifest
from mrivol.training import available_networks, config_files

NETWORKS = ["unet", "agms3d", "dynunet", "unetr", "swin_unetr"]


def test_every_mission_network_has_an_overlay():
    assert sorted(available_networks("brats_seg")) == sorted(NETWORKS)


def test_metadata_describes_every_network():
    meta = json.loads((bundle_dir("brats_seg") / "configs" / "metadata.json").read_text())
    assert sorted(meta["networks"]) == sorted(NETWORKS)
    for net, info in meta["networks"].items():
        assert info["config"] == f"configs/networks/{net}.yaml"
        assert info["training_output"] and info["mc_dropout"], net


@pytest.fixture(scope="module")
def plans_manifest(tiny_brats_manifest):
    plan_manifest(tiny_brats_manifest, tiny_brats_manifest.with_suffix(".plans.json"))
    return tiny_brats_manifest


@pytest.mark.parametrize("net", NETWORKS)
def test_overlay_trains_one_step_and_infers(net, plans_manifest):
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files("brats_seg", "train", profile="cpu", net=net)])
    parser.update({"manifest": str(plans_manifest), "device": "$torch.device('cpu')"})
    # the cpu profile's patch for Swin UNETR (needs 32-divisible sizes >= 64), 32^3 for the rest
    roi = [64] * 3 if net == "swin_unetr" else [32] * 3
    parser.update({"roi_size": roi})
    model = parser.get_parsed_content("network_def")
    loss_fn = parser.get_parsed_content("loss")
    assert parser.get_parsed_content("net_name") == net
    torch.manual_seed(0)
    x = torch.randn(1, 4, *roi)
    target = (torch.rand(1, 3, *roi) > 0.7).float()

    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    assert dropouts, "every segmentation network needs a dropout setting (MC dropout)"
    model.train()
    for m in model.modules():  # no stochastic zeroing while checking that gradients flow
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.p = 0.0
        if hasattr(m, "drop_prob"):  # stochastic depth (Swin UNETR)
            m.drop_prob = 0.0
    out = model(x)
    loss = loss_fn(out, target)
    loss.backward()
    assert torch.isfinite(loss)
    # MONAI's TransformerBlock builds a cross-attention norm it never uses (UNETR): the only
    # parameters allowed without a gradient; the overlay sets ddp_find_unused_parameters for it
    silent = [
        name
        for name, p in model.named_parameters()
        if "norm_cross_attn" not in name and (p.grad is None or not bool(p.grad.abs().sum() > 0))
    ]
    assert silent == []
    unused = any("norm_cross_attn" in name for name, _ in model.named_parameters())
    assert parser.get_parsed_content("ddp_find_unused_parameters") == unused

    model.eval()
    with torch.no_grad():
        assert model(x).shape == (1, 3, *roi)

"""Transfer learning: a loaded, frozen encoder stays bit-identical; bad checkpoints are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.losses import DiceCELoss

from mrivol.losses import MultiTaskLoss
from mrivol.networks import MultiTaskUNet
from mrivol.training.transfer_learning import FreezeEncoder, load_encoder_weights

SMALL = {"in_channels": 2, "seg_channels": 3, "num_classes": 2, "channels": (4, 8, 16)}


def _trainer(net, optimizer, epochs_data):
    from monai.engines import SupervisedTrainer

    def prepare(batch, device=None, non_blocking=False, **_):
        return batch["image"], (batch["mask"], batch["label"])

    return SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=3,
        train_data_loader=epochs_data,
        network=net,
        optimizer=optimizer,
        loss_function=MultiTaskLoss(seg_loss=DiceCELoss(sigmoid=True)),
        prepare_batch=prepare,
        decollate=False,
    )


@pytest.mark.parametrize("norm", ["INSTANCE", "BATCH"])  # BATCH: running statistics must hold too
def test_freeze_phase_keeps_loaded_encoder_bit_identical(tmp_path: Path, norm: str):
    torch.manual_seed(0)
    source = MultiTaskUNet(**SMALL, norm=norm)
    ckpt = tmp_path / "pretrained.pt"
    torch.save({"model": source.state_dict()}, ckpt)  # CheckpointSaver layout

    net = MultiTaskUNet(**SMALL, norm=norm)
    loaded = load_encoder_weights(net, ckpt)
    assert loaded and all(k.startswith("encoder.") for k in loaded)
    encoder0 = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    for k, v in source.encoder.state_dict().items():
        assert torch.equal(encoder0[k], v)
    head0 = {k: v.clone() for k, v in net.cls_head.state_dict().items()}

    data = [
        {
            "image": torch.randn(2, 2, 16, 16, 16),
            "mask": (torch.rand(2, 3, 16, 16, 16) > 0.5).float(),
            "label": torch.tensor([0, 1]),
        }
    ] * 2
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1)
    trainer = _trainer(net, optimizer, data)
    freeze = FreezeEncoder(
        network=net, optimizer=optimizer, freeze_epochs=2, unfreeze_lr_factor=0.1
    )
    freeze.attach(trainer)
    snapshots = {}
    from ignite.engine import Events

    trainer.add_event_handler(
        Events.EPOCH_COMPLETED,
        lambda e: snapshots.__setitem__(
            e.state.epoch, {k: v.clone() for k, v in net.encoder.state_dict().items()}
        ),
    )
    trainer.run()
    for epoch in (1, 2):  # frozen: bit-identical to the loaded weights
        assert all(torch.equal(snapshots[epoch][k], encoder0[k]) for k in encoder0)
    assert any(not torch.equal(snapshots[3][k], encoder0[k]) for k in encoder0)  # unfrozen
    assert any(not torch.equal(v, head0[k]) for k, v in net.cls_head.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("state", "error", "message"),
    [
        ({"head.w": torch.zeros(1)}, ValueError, "no tensor starts with"),
        ({"encoder.0.conv.unit0.conv.weight": torch.zeros(1)}, ValueError, "do not fit"),
    ],
    ids=["no-encoder", "wrong-shape"],
)
def test_load_encoder_refuses_bad_checkpoints(tmp_path: Path, state, error, message):
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(error, match=message):
        load_encoder_weights(MultiTaskUNet(**SMALL), tmp_path / "bad.pt")


def test_load_encoder_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="local .pt"):
        load_encoder_weights(MultiTaskUNet(**SMALL), tmp_path / "none.pt")


def test_no_checkpoint_loads_nothing():
    net = MultiTaskUNet(**SMALL)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert load_encoder_weights(net, None) == []
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())

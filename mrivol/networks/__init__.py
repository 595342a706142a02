"""mrivol.networks: custom 3D networks, the nnU-Net-style planner and MC dropout.

MONAI's stock networks (``UNet``, ``DynUNet``, ``UNETR``, ``SwinUNETR``) are used directly
from bundle configs; this package adds what MONAI does not ship.
"""

from __future__ import annotations

from mrivol.networks.agms3d_cnn import AGMS3DCNN
from mrivol.networks.attention_gate import AttentionGate
from mrivol.networks.dcgan3d import (
    DCGANDiscriminator3D,
    DCGANGenerator3D,
    DiffAugment3D,
    DiscriminatorLoss,
    GeneratorLoss,
    dcgan_init,
)
from mrivol.networks.deep_supervision import StackedDeepSupervisionLoss
from mrivol.networks.densenet3d_attention import (
    DenseNet3DAttention,
    sinusoidal_position_encoding_3d,
)
from mrivol.networks.fingerprint import FingerprintError, compute_fingerprint
from mrivol.networks.mc_dropout import (
    DROPOUT_TYPES,
    McDropoutHandle,
    enable_mc_dropout,
    mc_dropout,
    mc_predict,
)
from mrivol.networks.multiscale_block import MultiScaleBlock
from mrivol.networks.multitask import MultiTaskLoss, MultiTaskUNet
from mrivol.networks.planner import (
    build_dynunet,
    estimate_feature_map_size,
    plan_from_fingerprint,
    pool_and_conv_props,
    read_plans,
    write_plans,
)

__all__ = [
    "AGMS3DCNN",
    "DROPOUT_TYPES",
    "AttentionGate",
    "DenseNet3DAttention",
    "FingerprintError",
    "McDropoutHandle",
    "MultiScaleBlock",
    "StackedDeepSupervisionLoss",
    "build_dynunet",
    "compute_fingerprint",
    "enable_mc_dropout",
    "estimate_feature_map_size",
    "mc_dropout",
    "mc_predict",
    "plan_from_fingerprint",
    "pool_and_conv_props",
    "read_plans",
    "sinusoidal_position_encoding_3d",
    "write_plans",
    "MultiTaskLoss",
    "MultiTaskUNet",
    "DCGANDiscriminator3D",
    "DCGANGenerator3D",
    "DiffAugment3D",
    "DiscriminatorLoss",
    "GeneratorLoss",
    "dcgan_init",
]

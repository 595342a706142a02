"""Networks and blocks that MONAI does not ship (its ``UNet``, ``DynUNet``, ``UNETR`` and
``SwinUNETR`` are used directly from bundle configs).

* :mod:`~mrivol.networks.agms3d_cnn` with :mod:`~mrivol.networks.attention_gate` and
  :mod:`~mrivol.networks.multiscale_block`: the attention-guided multiscale 3D CNN.
* :mod:`~mrivol.networks.dynunet`: MONAI's DynUNet from a plans file.
* :mod:`~mrivol.networks.densenet3d_attention`: 3D DenseNet with self-attention.
* :mod:`~mrivol.networks.multitask`: shared encoder, segmentation decoder, class head.
* :mod:`~mrivol.networks.dcgan3d`: the 3D DCGAN generator and discriminator.
* :mod:`~mrivol.networks.resize_conv_unet`: MONAI's U-Net, upsampling without checkerboards.
"""

from __future__ import annotations

from mrivol.networks.agms3d_cnn import AGMS3DCNN
from mrivol.networks.attention_gate import AttentionGate
from mrivol.networks.dcgan3d import DCGANDiscriminator3D, DCGANGenerator3D, dcgan_init
from mrivol.networks.densenet3d_attention import (
    DenseNet3DAttention,
    sinusoidal_position_encoding_3d,
)
from mrivol.networks.dynunet import build_dynunet
from mrivol.networks.multiscale_block import MultiScaleBlock
from mrivol.networks.multitask import MultiTaskUNet
from mrivol.networks.resize_conv_unet import ResizeConvUNet

__all__ = [
    "AGMS3DCNN",
    "AttentionGate",
    "DCGANDiscriminator3D",
    "DCGANGenerator3D",
    "DenseNet3DAttention",
    "MultiScaleBlock",
    "MultiTaskUNet",
    "ResizeConvUNet",
    "build_dynunet",
    "dcgan_init",
    "sinusoidal_position_encoding_3d",
]

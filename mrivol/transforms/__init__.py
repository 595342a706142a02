"""Every mrivol MONAI transform: preprocessing, labels, and inference outputs; one per file.

Array transforms hold the logic; each ``...d`` is a thin ``MapTransform`` wrapper. Registration
and bias correction run on SimpleITK; skull stripping has pluggable backends. The MC-dropout
split of inference outputs (:class:`SplitMcOutputd`) and the multi-task class target
(:class:`TumourVolumeClassd`) are dictionary transforms too (saving them:
:mod:`mrivol.inference.save_case_outputs`).
"""

from __future__ import annotations

from mrivol.transforms.brats_regions_to_labels import BratsRegionsToLabels, BratsRegionsToLabelsd
from mrivol.transforms.cap_indices import CapIndices, CapIndicesd
from mrivol.transforms.co_register import CoRegister, CoRegisterd, transform_to_ras_matrix
from mrivol.transforms.label_box import LabelBoxd, RestoreLabelBoxd
from mrivol.transforms.n4_bias_field import N4BiasFieldCorrection, N4BiasFieldCorrectiond
from mrivol.transforms.nibabel_reader import ThreadSafeNibabelReader
from mrivol.transforms.real_scans_only import RealScansOnlyd
from mrivol.transforms.register_to_template import (
    RegisterToTemplate,
    RegisterToTemplated,
    load_template,
)
from mrivol.transforms.skull_strip import (
    SKULL_STRIP_BACKENDS,
    SkullStrip,
    SkullStripd,
    deepbet_mask,
    threshold_mask,
)
from mrivol.transforms.split_mc_output import SplitMcOutputd
from mrivol.transforms.tumour_volume_class import TumourVolumeClassd

__all__ = [
    "SKULL_STRIP_BACKENDS",
    "BratsRegionsToLabels",
    "BratsRegionsToLabelsd",
    "CapIndices",
    "CapIndicesd",
    "CoRegister",
    "CoRegisterd",
    "LabelBoxd",
    "N4BiasFieldCorrection",
    "N4BiasFieldCorrectiond",
    "RealScansOnlyd",
    "RegisterToTemplate",
    "RegisterToTemplated",
    "RestoreLabelBoxd",
    "SkullStrip",
    "SkullStripd",
    "SplitMcOutputd",
    "ThreadSafeNibabelReader",
    "TumourVolumeClassd",
    "deepbet_mask",
    "load_template",
    "threshold_mask",
    "transform_to_ras_matrix",
]

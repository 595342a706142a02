"""Synthetic data with exact truth: BraTS-like and Alzheimer-like phantoms, default data sets.

* :mod:`~mrivol.synth.mni`: the MNI152 anatomy nilearn ships (tissue maps, head model).
* :mod:`~mrivol.synth.phantom_contrast`, :mod:`~mrivol.synth.phantom_tumour`,
  :mod:`~mrivol.synth.phantom_render`, :mod:`~mrivol.synth.phantoms`: BraTS-like cases.
* :mod:`~mrivol.synth.brats2023_layout`: a BraTS 2021-layout set rewritten in the 2023+ layout.
* :mod:`~mrivol.synth.phantom_difficulty`: how hard a phantom set is (threshold Dice).
* :mod:`~mrivol.synth.ad_phantoms`: CN / MCI / AD T1 phantoms with atrophy.
* :mod:`~mrivol.synth.default_data`: a bundle's embedded phantom set, made once and cached.
"""

from __future__ import annotations

from mrivol.synth.ad_phantoms import (
    AD_SEVERITY,
    ensure_ad_manifest,
    generate_ad_phantoms,
    parse_class_ratio,
    render_ad_scan,
)
from mrivol.synth.brats2023_layout import write_brats2023_layout
from mrivol.synth.default_data import default_manifest, ensure_phantom_manifest, phantom_dir
from mrivol.synth.mni import (
    HEAD_CLASSES,
    HeadLayers,
    HeadModel,
    TissueMaps,
    grid_world_axes,
    head_fractions,
    load_head_model,
    load_mni_tissue_maps,
    tissue_fraction_maps,
    tissue_fractions,
)
from mrivol.synth.phantom_contrast import (
    CONTRAST_CLASSES,
    MODALITIES,
    base_contrasts,
    bias_field,
    jitter_contrasts,
    rician_noise,
    vessel_map,
)
from mrivol.synth.phantom_difficulty import REGIONS, best_threshold_dice, threshold_difficulty
from mrivol.synth.phantom_render import (
    GENERATOR_VERSION,
    HEAD_CENTRE_MNI_MM,
    BratsCase,
    render_brats_case,
)
from mrivol.synth.phantom_tumour import Tumour, make_tumour
from mrivol.synth.phantoms import (
    SEG_LABELS,
    TISSUE_LABELS,
    case_files,
    generate_brats_phantoms,
)

__all__ = [
    "AD_SEVERITY",
    "BratsCase",
    "CONTRAST_CLASSES",
    "GENERATOR_VERSION",
    "HEAD_CENTRE_MNI_MM",
    "HEAD_CLASSES",
    "HeadLayers",
    "HeadModel",
    "MODALITIES",
    "REGIONS",
    "SEG_LABELS",
    "TISSUE_LABELS",
    "TissueMaps",
    "Tumour",
    "base_contrasts",
    "best_threshold_dice",
    "bias_field",
    "case_files",
    "default_manifest",
    "ensure_ad_manifest",
    "ensure_phantom_manifest",
    "generate_ad_phantoms",
    "generate_brats_phantoms",
    "grid_world_axes",
    "head_fractions",
    "jitter_contrasts",
    "load_head_model",
    "load_mni_tissue_maps",
    "make_tumour",
    "parse_class_ratio",
    "phantom_dir",
    "render_ad_scan",
    "render_brats_case",
    "rician_noise",
    "threshold_difficulty",
    "tissue_fraction_maps",
    "tissue_fractions",
    "vessel_map",
    "write_brats2023_layout",
]

"""Data: manifests, subject-level splits, datalists and synthetic phantoms."""

from __future__ import annotations

from mrivol.data.ad_phantoms import (
    AD_SEVERITY,
    ensure_ad_manifest,
    generate_ad_phantoms,
    parse_class_ratio,
    render_ad_scan,
)
from mrivol.data.datalist import to_datalist
from mrivol.data.manifest import (
    BASE_COLUMNS,
    LAYOUTS,
    Layout,
    ManifestError,
    build_manifest,
    infer_layout,
    manifest_hash,
    read_manifest,
    read_manifest_table,
    resolve_dataset_root,
)
from mrivol.data.manifest_check import Problem, check_manifest, format_problems
from mrivol.data.phantoms import (
    SEG_LABELS,
    TISSUE_LABELS,
    case_files,
    generate_brats_phantoms,
    threshold_difficulty,
)
from mrivol.data.splits import (
    DataLeakageError,
    SubjectLeakageError,
    assign_subject_folds,
    check_no_subject_leakage,
    check_split,
    find_subject_leakage,
)
from mrivol.data.t1_table import T1_CLASSES, scan_t1_table

__all__ = [
    "AD_SEVERITY",
    "DataLeakageError",
    "T1_CLASSES",
    "check_split",
    "ensure_ad_manifest",
    "generate_ad_phantoms",
    "parse_class_ratio",
    "render_ad_scan",
    "scan_t1_table",
    "BASE_COLUMNS",
    "LAYOUTS",
    "Layout",
    "ManifestError",
    "Problem",
    "SEG_LABELS",
    "TISSUE_LABELS",
    "SubjectLeakageError",
    "assign_subject_folds",
    "build_manifest",
    "case_files",
    "check_manifest",
    "check_no_subject_leakage",
    "find_subject_leakage",
    "format_problems",
    "generate_brats_phantoms",
    "infer_layout",
    "manifest_hash",
    "read_manifest",
    "read_manifest_table",
    "resolve_dataset_root",
    "threshold_difficulty",
    "to_datalist",
]

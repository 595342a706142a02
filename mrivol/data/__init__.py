"""Data: manifests and their layouts, file checks, subject-level splits, datalists.

* :mod:`~mrivol.data.layout`: what a layout is (columns, label values), the manifest error.
* :mod:`~mrivol.data.manifest`: the layout registry; build, read and hash manifests.
* :mod:`~mrivol.data.t1_table`: the ``t1-table`` layout (ADNI / OASIS style scan tables).
* :mod:`~mrivol.data.manifest_check`: open every file of a manifest and name its problems.
* :mod:`~mrivol.data.nifti`: verified NIfTI reading and affine comparisons.
* :mod:`~mrivol.data.splits`: subject-level folds and the leakage guard.
* :mod:`~mrivol.data.datalist`: MONAI datalists of a manifest's fold and split.
* :mod:`~mrivol.data.tumour_classes`: a case class from the whole-tumour volume.
* :mod:`~mrivol.data.cache_budget`: a cache filled by several threads, within a memory budget.
"""

from __future__ import annotations

from mrivol.data.datalist import SPLITS, to_datalist
from mrivol.data.layout import (
    BASE_COLUMNS,
    BRATS2023_MODALITIES,
    BRATS_MODALITIES,
    Layout,
    ManifestError,
)
from mrivol.data.manifest import (
    LAYOUTS,
    build_manifest,
    infer_layout,
    manifest_hash,
    manifest_settings,
    read_manifest,
    read_manifest_table,
    resolve_dataset_root,
)
from mrivol.data.manifest_check import Problem, check_manifest, format_problems
from mrivol.data.nifti import affine_mismatch, load_nifti_verified
from mrivol.data.splits import (
    DataLeakageError,
    SubjectLeakageError,
    assign_subject_folds,
    check_no_subject_leakage,
    check_split,
    find_subject_leakage,
)
from mrivol.data.t1_table import DIAGNOSIS_ALIASES, T1_CLASSES, TABLE_COLUMNS, scan_t1_table
from mrivol.data.tumour_classes import tumour_class, tumour_volume_edges, tumour_volume_ml
from mrivol.lazy import lazy_exports

# the cache (MONAI datasets, torch) loads on first use: manifests stay a light import
_LAZY = {
    name: "cache_budget"
    for name in ("BudgetedCacheDataset", "available_memory_bytes", "cache_budget_bytes")
}
_lazy_getattr, _ = lazy_exports(__name__, _LAZY)


def __getattr__(name: str):  # noqa: ANN202 - PEP 562
    return _lazy_getattr(name)


__all__ = [
    "BudgetedCacheDataset",
    "BASE_COLUMNS",
    "BRATS2023_MODALITIES",
    "BRATS_MODALITIES",
    "DIAGNOSIS_ALIASES",
    "DataLeakageError",
    "LAYOUTS",
    "Layout",
    "ManifestError",
    "Problem",
    "SPLITS",
    "SubjectLeakageError",
    "T1_CLASSES",
    "TABLE_COLUMNS",
    "affine_mismatch",
    "available_memory_bytes",
    "assign_subject_folds",
    "build_manifest",
    "cache_budget_bytes",
    "check_manifest",
    "check_no_subject_leakage",
    "check_split",
    "find_subject_leakage",
    "format_problems",
    "infer_layout",
    "load_nifti_verified",
    "manifest_hash",
    "manifest_settings",
    "read_manifest",
    "read_manifest_table",
    "resolve_dataset_root",
    "scan_t1_table",
    "to_datalist",
    "tumour_class",
    "tumour_volume_edges",
    "tumour_volume_ml",
]

"""Planning: dataset fingerprint -> nnU-Net v2-style plan -> plans JSON.

* :mod:`~mrivol.planning.fingerprint`: spacings, shapes after cropping, intensity statistics.
* :mod:`~mrivol.planning.planner`: nnU-Net v2's rules (spacing, patch, topology, batch).
* :mod:`~mrivol.planning.plans`: ``mrivol plan`` for a manifest; plans JSON I/O.
"""

from __future__ import annotations

from mrivol.planning.fingerprint import FingerprintError, compute_fingerprint
from mrivol.planning.planner import (
    PLANS_FORMAT,
    estimate_feature_map_size,
    nnunet_axis_order,
    plan_from_fingerprint,
    pool_and_conv_props,
)
from mrivol.planning.plans import plan_manifest, read_plans, write_plans

__all__ = [
    "FingerprintError",
    "PLANS_FORMAT",
    "compute_fingerprint",
    "estimate_feature_map_size",
    "plan_from_fingerprint",
    "plan_manifest",
    "nnunet_axis_order",
    "pool_and_conv_props",
    "read_plans",
    "write_plans",
]

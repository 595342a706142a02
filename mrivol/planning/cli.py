"""``mrivol plan``: the planning stage's command."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def cmd_plan(args: argparse.Namespace) -> int:
    from mrivol.planning.plans import plan_manifest

    plans = plan_manifest(
        args.manifest, args.out, gpu_memory_gb=args.gpu_memory_gb, workers=args.workers
    )
    keys = ("target_spacing", "patch_size", "batch_size", "strides", "kernel_sizes", "filters")
    for key in keys:
        print(f"{key:>15s}: {plans[key]}")
    print(f"plans -> {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``plan`` to the ``mrivol`` parser."""
    p = sub.add_parser(
        "plan", help="nnU-Net v2-style plan (spacing, patch, topology) for a manifest"
    )
    p.set_defaults(func=cmd_plan)
    p.add_argument("--manifest", required=True, help="manifest CSV")
    p.add_argument("--out", required=True, help="plans JSON to write")
    p.add_argument("--gpu-memory-gb", type=float, default=8.0, help="GPU memory budget (GB)")
    p.add_argument("--workers", type=int, default=1, help="processes reading cases")

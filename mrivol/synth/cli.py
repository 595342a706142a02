"""``mrivol synth brats|ad``: the synthetic-data stage's commands."""

from __future__ import annotations

import argparse
import os

__all__ = ["register"]


def cmd_synth_brats(args: argparse.Namespace) -> int:
    from mrivol.synth import generate_brats_phantoms, threshold_difficulty

    cases = generate_brats_phantoms(
        args.out,
        n_cases=args.cases,
        seed=args.seed,
        shape=tuple(args.shape),
        spacing=tuple(args.spacing),
        workers=args.workers,
    )
    print(f"{len(cases)} cases in {args.out}")
    table = threshold_difficulty(cases)
    print("best single-modality threshold Dice per region (how hard the phantom is):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_synth_ad(args: argparse.Namespace) -> int:
    from mrivol.synth.ad_phantoms import main_synth_ad

    return main_synth_ad(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``synth brats`` and ``synth ad`` to the ``mrivol`` parser."""
    from mrivol.synth.ad_phantoms import add_synth_ad_arguments

    synth = sub.add_parser("synth", help="synthetic data sets").add_subparsers(
        dest="kind", required=True
    )
    p = synth.add_parser("brats", help="BraTS 2021-layout phantoms from the MNI152 template")
    p.set_defaults(func=cmd_synth_brats)
    p.add_argument("--cases", type=int, required=True, help="number of cases")
    p.add_argument("--out", required=True, help="output directory (BraTS layout)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--shape", type=int, nargs=3, default=(240, 240, 155), metavar=("X", "Y", "Z"))
    p.add_argument(
        "--spacing", type=float, nargs=3, default=(1.0, 1.0, 1.0), metavar=("SX", "SY", "SZ")
    )
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    p = synth.add_parser("ad", help="Alzheimer-like T1 phantoms (CN / MCI / AD) with a manifest")
    p.set_defaults(func=cmd_synth_ad)
    add_synth_ad_arguments(p)

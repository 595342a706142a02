"""``mrivol manifest build|check``: the data stage's commands."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def cmd_manifest_build(args: argparse.Namespace) -> int:
    from mrivol.data import build_manifest

    df = build_manifest(
        layout=args.layout,
        root=args.root,
        out=args.out,
        folds=args.folds,
        seed=args.seed,
        root_var=args.root_var,
        **({"table": args.table} if args.table else {}),
    )
    counts = df.groupby("fold").size().to_dict()
    print(f"{len(df)} scans of {df['subject_id'].nunique()} subjects -> {args.out}")
    print("scans per fold: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    incomplete = df.attrs.get("incomplete", {})
    if incomplete:
        print(f"{len(incomplete)} incomplete case(s) left out:", file=sys.stderr)
        for case, missing in incomplete.items():
            print(f"  {case}: missing {', '.join(missing)}", file=sys.stderr)
        if not args.skip_incomplete:
            print("(exit 1; pass --skip-incomplete to accept the manifest without them)",
                  file=sys.stderr)  # fmt: skip
            return 1
    return 0


def cmd_manifest_check(args: argparse.Namespace) -> int:
    from mrivol.data import check_manifest, format_problems

    problems = check_manifest(args.manifest, progress=True)
    if problems:
        print(format_problems(problems))
        print(f"{len(problems)} problem(s) in {args.manifest}", file=sys.stderr)
        return 1
    print(f"{args.manifest}: every row is valid")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``manifest build`` and ``manifest check`` to the ``mrivol`` parser."""
    manifest = sub.add_parser("manifest", help="data manifests").add_subparsers(
        dest="action", required=True
    )
    p = manifest.add_parser("build", help="build a manifest from a dataset on disk")
    p.set_defaults(func=cmd_manifest_build)
    p.add_argument(
        "--layout", required=True, help="dataset layout: brats2021, brats2023 or t1-table"
    )
    p.add_argument("--root", required=True, help="dataset root directory")
    p.add_argument(
        "--table", default=None, help="t1-table layout: CSV of subject, session, T1 path, diagnosis"
    )
    p.add_argument("--out", required=True, help="manifest CSV to write")
    p.add_argument("--folds", type=int, default=5, help="subject-level folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="fold assignment seed (default 0)")
    p.add_argument(
        "--root-var",
        default=None,
        help="write dataset_root as $VAR (an environment variable) instead of a relative path",
    )
    p.add_argument(
        "--skip-incomplete",
        action="store_true",
        help="exit 0 when cases with missing files were left out (they are still listed)",
    )
    p = manifest.add_parser("check", help="validate every row and file of a manifest")
    p.set_defaults(func=cmd_manifest_check)
    p.add_argument("manifest", help="manifest CSV")

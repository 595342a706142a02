"""``mrivol cv`` and ``mrivol study``: the cross-validation stage's commands."""

from __future__ import annotations

import argparse

__all__ = ["add_cv_arguments", "fold_list", "register"]


def fold_list(text: str) -> list[int]:
    """Parse ``0,1,2`` (or ``0-4``) into fold numbers.

    Examples:
        >>> fold_list("0,2-4")
        [0, 2, 3, 4]
    """
    folds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                folds += list(range(int(lo), int(hi) + 1))
            elif part:
                folds.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected folds like 0,1,2 or 0-4, got {text!r}"
        ) from None
    return folds


def add_cv_arguments(p: argparse.ArgumentParser) -> None:
    """The options ``cv`` and ``study`` share (besides ``--bundle`` and the networks)."""
    from mrivol.training.cli import key_value

    p.add_argument(
        "--folds", type=fold_list, default=None, help="folds to train, e.g. 0,1,2 (default: all)"
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs per fold (default: profile's)")
    p.add_argument("--data", default=None, help="manifest CSV (default: synthesised phantoms)")
    p.add_argument("--profile", choices=("cpu", "gpu"), default=None, help="default: detected")
    p.add_argument(
        "--set", type=key_value, action="append", metavar="KEY=VALUE", help="config override"
    )
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="wall time per fold instead of a fixed number of epochs (the fair CPU comparison)",
    )
    p.add_argument(
        "--no-postprocessing",
        dest="postprocess",
        action="store_false",
        help="do not tune the segmentation post-processing on the OOF predictions",
    )


def cmd_cv(args: argparse.Namespace) -> int:
    from mrivol.crossval.cross_validate import cross_validate, format_cv_result

    result = cross_validate(
        bundle=args.bundle,
        net=args.net,
        folds=args.folds,
        epochs=args.epochs,
        data=args.data,
        profile=args.profile,
        overrides=dict(args.set or []),
        gpus=args.gpus,
        budget_minutes=args.budget_minutes,
        postprocess=args.postprocess,
    )
    print(format_cv_result(result))
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from mrivol.crossval.study import format_study, run_study

    result = run_study(
        bundle=args.bundle,
        nets=[n.strip() for n in args.nets.split(",") if n.strip()],
        folds=args.folds,
        epochs=args.epochs,
        data=args.data,
        profile=args.profile,
        overrides=dict(args.set or []),
        budget_minutes=args.budget_minutes,
        postprocess=args.postprocess,
    )
    print(format_study(result))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cv`` and ``study`` to the ``mrivol`` parser."""
    p = sub.add_parser(
        "cv", help="cross-validate a bundle: every fold a child run, OOF metrics, post-processing"
    )
    p.set_defaults(func=cmd_cv)
    p.add_argument("--bundle", default="brats_seg", help="bundle (default brats_seg)")
    p.add_argument("--net", default=None, help="network overlay (default: the bundle's default)")
    add_cv_arguments(p)
    p.add_argument("--gpus", type=int, default=1, help="processes per fold (DDP via torchrun)")

    p = sub.add_parser(
        "study", help="cross-validate several networks on the same folds and pick the best"
    )
    p.set_defaults(func=cmd_study)
    p.add_argument("--bundle", default="brats_seg", help="bundle (default brats_seg)")
    p.add_argument(
        "--nets", required=True, help="comma-separated network overlays, e.g. unet,agms3d,dynunet"
    )
    add_cv_arguments(p)

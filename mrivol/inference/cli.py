"""``mrivol infer``: the inference stage's command."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def cmd_infer(args: argparse.Namespace) -> int:
    from mrivol.inference.infer import main_infer

    return main_infer(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``infer`` to the ``mrivol`` parser."""
    from mrivol.inference.infer import add_infer_arguments
    from mrivol.training.cli import add_bundle_arguments

    p = sub.add_parser(
        "infer",
        help="segment new scans (MC dropout: entropy and MI maps), or classify them "
        "(ad_cls: probabilities, Grad-CAM++ maps)",
    )
    p.set_defaults(func=cmd_infer)
    add_bundle_arguments(p)
    add_infer_arguments(p)

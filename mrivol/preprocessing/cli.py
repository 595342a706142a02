"""``mrivol preprocess``: the preprocessing stage's command."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def cmd_preprocess(args: argparse.Namespace) -> int:
    from mrivol.preprocessing.runner import main_preprocess

    return main_preprocess(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``preprocess`` to the ``mrivol`` parser."""
    from mrivol.preprocessing.runner import add_preprocess_arguments

    p = sub.add_parser("preprocess", help="skull strip, N4, co-register, resample a manifest")
    p.set_defaults(func=cmd_preprocess)
    add_preprocess_arguments(p)

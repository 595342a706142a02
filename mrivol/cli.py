"""The ``mrivol`` command: each workflow stage registers its own subcommands.

In pipeline order:

mrivol manifest build|check ...              data: manifests of a dataset on disk
mrivol synth brats|ad --out DIR ...          synth: BraTS-like / Alzheimer-like phantoms
mrivol preprocess --manifest M --out DIR     preprocessing: skull strip, N4, co-register, resample
mrivol plan --manifest M --out PLANS.json    planning: nnU-Net v2-style plan
mrivol data --bundle B                       training: a bundle's default (phantom) data set
mrivol train --bundle B [--net N] ...        training: train and log to MLflow
mrivol infer --bundle B --run RUN --input M --out DIR
                                             inference: label maps, probabilities, uncertainty
mrivol evaluate --bundle B --run RUN         evaluation: a run on its validation fold
mrivol evaluate-seg --pred DIR --gt DIR      evaluation: a folder of predictions
mrivol cv --bundle B [--net N] [--folds ...] crossval: every fold, OOF metrics, post-processing
mrivol study --bundle B --nets N1,N2,...     crossval: networks compared on the same folds
mrivol compare --experiment B                tracking: an experiment's runs side by side
mrivol runs [--fix-stale]                    tracking: runs left RUNNING by killed processes
mrivol register --run RUN --name N [--alias A]  tracking: a run's model into the MLflow registry
mrivol export --run RUN --format F --out FILE  tracking: TorchScript / ONNX, parity-checked
mrivol mlflow-ui | mlflow-server             tracking: the MLflow UI / a tracking server
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["STAGES", "build_parser", "main"]

#: The packages whose ``cli.register`` adds subcommands, in pipeline order.
STAGES = (
    "data",
    "synth",
    "preprocessing",
    "planning",
    "training",
    "inference",
    "evaluation",
    "crossval",
    "tracking",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mrivol``: one subparser per command, registered by its stage."""
    parser = argparse.ArgumentParser(prog="mrivol", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        importlib.import_module(f"mrivol.{stage}.cli").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mrivol`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"mrivol {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

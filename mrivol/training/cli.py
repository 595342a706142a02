"""``mrivol data`` and ``mrivol train``: the training stage's commands.

:func:`add_bundle_arguments` (``--bundle``, ``--net``, ``--fold``) is shared with the later
stages' commands that act on a bundle (``infer``, ``evaluate``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

__all__ = ["add_bundle_arguments", "key_value", "register", "tag_value"]


def key_value(text: str) -> tuple[str, Any]:
    """Parse a ``key=value`` override; the value is read as YAML (numbers, lists, booleans)."""
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def tag_value(text: str) -> tuple[str, str]:
    """Parse a ``key=value`` MLflow tag; the value stays a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def add_bundle_arguments(p: argparse.ArgumentParser) -> None:
    """``--bundle``, ``--net`` and ``--fold``."""
    p.add_argument(
        "--bundle", default="brats_seg", help="bundle under bundles/ (default brats_seg)"
    )
    p.add_argument(
        "--net",
        default=None,
        help="network overlay, configs/networks/<net>.yaml (default: the bundle's default_network)",
    )
    p.add_argument("--fold", type=int, default=0, help="validation fold (default 0)")


def cmd_data(args: argparse.Namespace) -> int:
    from mrivol.synth import ensure_phantom_manifest
    from mrivol.training.workflow import detect_profile, profile_synth

    profile = args.profile or detect_profile()
    manifest = ensure_phantom_manifest(args.bundle, profile, profile_synth(args.bundle, profile))
    print(manifest)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mrivol.training import format_result, torchrun_command, train
    from mrivol.training.workflow import config_files, default_network

    if args.gpus > 1 and "LOCAL_RANK" not in os.environ:  # re-launch on N processes per node
        from mrivol.training.launch import prepare_before_ranks
        from mrivol.training.workflow import detect_profile

        net = args.net or default_network(args.bundle)
        config_files(args.bundle, "train", profile="cpu", net=net, distributed=True)  # checks
        prepare_before_ranks(  # data and plan once, here, not by rank 0 while the rest wait
            bundle=args.bundle,
            net=net,
            profile=args.profile or detect_profile(),
            data=args.data,
            overrides=dict(args.set or []),
            processes=args.gpus,
        )
        env = {
            k: os.environ.get(k) or None
            for k in ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
        }
        cmd = torchrun_command(  # empty variables (as `make` exports unset ones) count as unset
            sys.argv[1:] if args.argv is None else args.argv,
            gpus=args.gpus,
            nnodes=int(env["NNODES"] or 1),
            node_rank=int(env["NODE_RANK"] or 0),
            master_addr=env["MASTER_ADDR"],
            master_port=int(env["MASTER_PORT"]) if env["MASTER_PORT"] else None,
        )
        print("launching: " + " ".join(cmd), flush=True)
        return subprocess.call(cmd)
    result = train(
        bundle=args.bundle,
        net=args.net,
        data=args.data,
        fold=args.fold,
        epochs=args.epochs,
        profile=args.profile,
        overrides=dict(args.set or []),
        resume=args.resume,
        tags=dict(args.tag or []),
    )
    if result is not None:  # rank 0
        print(format_result(result))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data`` and ``train`` to the ``mrivol`` parser."""
    p = sub.add_parser(
        "data", help="synthesise a bundle's default phantom set (cached); print its manifest"
    )
    p.set_defaults(func=cmd_data)
    p.add_argument("--bundle", default="brats_seg")
    p.add_argument("--profile", choices=("cpu", "gpu"), default=None)

    p = sub.add_parser("train", help="train a bundle and log the run to MLflow")
    p.set_defaults(func=cmd_train)
    add_bundle_arguments(p)
    p.add_argument("--data", default=None, help="manifest CSV (default: synthesised phantoms)")
    p.add_argument("--epochs", type=int, default=None, help="override the profile's max_epochs")
    p.add_argument("--profile", choices=("cpu", "gpu"), default=None, help="default: detected")
    p.add_argument(
        "--set", type=key_value, action="append", metavar="KEY=VALUE", help="config override"
    )
    p.add_argument(
        "--tag", type=tag_value, action="append", metavar="KEY=VALUE", help="MLflow run tag"
    )
    p.add_argument(
        "--gpus",
        type=int,
        default=1,
        help="processes per node (DDP via torchrun; NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT "
        "from the environment for several nodes)",
    )
    resume = p.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        action="store_const",
        const=True,
        default=None,
        help="continue the latest run of this bundle/net/fold from its resume checkpoint "
        "(default: only a run that was interrupted)",
    )
    resume.add_argument(
        "--new-run",
        dest="resume",
        action="store_const",
        const=False,
        help="start a new run even if an interrupted one could be resumed",
    )

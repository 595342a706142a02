"""The ``mrivol`` command: one subcommand per stage of the workflow.

mrivol synth brats --cases N --out DIR       synthetic BraTS-like phantoms
mrivol manifest build|check ...              data manifests
mrivol data --bundle B                       a bundle's default (phantom) data set
mrivol train --bundle B [--net N] ...        train and log to MLflow
mrivol evaluate --bundle B --run RUN         evaluate a run on its validation fold
mrivol infer --bundle B --run RUN --input M --out DIR
mrivol mlflow-ui                             the MLflow UI for the local store
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main", "build_parser"]


def _key_value(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` overrides; the value is read as YAML (numbers, lists, booleans)."""
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def cmd_synth_brats(args: argparse.Namespace) -> int:
    from mrivol.data import generate_brats_phantoms, threshold_difficulty

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


def cmd_data(args: argparse.Namespace) -> int:
    from mrivol.engine.default_data import ensure_phantom_manifest
    from mrivol.engine.runner import detect_profile, profile_synth

    profile = args.profile or detect_profile()
    manifest = ensure_phantom_manifest(args.bundle, profile, profile_synth(args.bundle, profile))
    print(manifest)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mrivol.engine import format_result, torchrun_command, train
    from mrivol.engine.runner import config_files, default_network

    if args.gpus > 1 and "LOCAL_RANK" not in os.environ:  # re-launch on N processes per node
        net = args.net or default_network(args.bundle)
        config_files(args.bundle, "train", profile="cpu", net=net, distributed=True)  # checks
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
    )
    if result is not None:  # rank 0
        print(format_result(result))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mrivol.engine import evaluate
    from mrivol.engine.runner import default_network

    metrics = evaluate(
        bundle=args.bundle,
        run=args.run,
        data=args.data,
        out=args.out,
        net=args.net or default_network(args.bundle),
        fold=args.fold,
    )
    for name, value in sorted(metrics.items()):
        print(f"{name:>20s}  {value:.4f}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from mrivol.engine.planning import plan_manifest

    plans = plan_manifest(
        args.manifest, args.out, gpu_memory_gb=args.gpu_memory_gb, workers=args.workers
    )
    keys = ("target_spacing", "patch_size", "batch_size", "strides", "kernel_sizes", "filters")
    for key in keys:
        print(f"{key:>15s}: {plans[key]}")
    print(f"plans -> {args.out}")
    return 0


def cmd_mlflow_ui(args: argparse.Namespace) -> int:
    import mlflow

    from mrivol.engine import default_tracking_uri, project_root, runs_url

    uri = default_tracking_uri()
    print(f"MLflow UI for {uri} on http://{args.host}:{args.port}")
    for exp in mlflow.MlflowClient(uri).search_experiments():
        if exp.name != "Default":
            print(f"  {exp.name}: {runs_url(exp.experiment_id, host=args.host, port=args.port)}")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", args.host, "--port", str(args.port)]
    return subprocess.call(cmd, cwd=project_root(), env=os.environ.copy())


def _bundle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bundle", default="brats_seg", help="bundle under bundles/ (default brats_seg)"
    )
    p.add_argument(
        "--net",
        default=None,
        help="network overlay, configs/networks/<net>.yaml (default: the bundle's default_network)",
    )
    p.add_argument("--fold", type=int, default=0, help="validation fold (default 0)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mrivol`` (one subparser per command)."""
    parser = argparse.ArgumentParser(prog="mrivol", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str, parent=sub):
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    synth = sub.add_parser("synth", help="synthetic data sets").add_subparsers(
        dest="kind", required=True
    )
    p = add("brats", cmd_synth_brats, "BraTS 2021-layout phantoms from the MNI152 template", synth)
    p.add_argument("--cases", type=int, required=True, help="number of cases")
    p.add_argument("--out", required=True, help="output directory (BraTS layout)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--shape", type=int, nargs=3, default=(240, 240, 155), metavar=("X", "Y", "Z"))
    p.add_argument(
        "--spacing", type=float, nargs=3, default=(1.0, 1.0, 1.0), metavar=("SX", "SY", "SZ")
    )
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")

    from mrivol.data.ad_phantoms import add_synth_ad_arguments, main_synth_ad

    p = add(
        "ad", main_synth_ad, "Alzheimer-like T1 phantoms (CN / MCI / AD) with a manifest", synth
    )
    add_synth_ad_arguments(p)

    manifest = sub.add_parser("manifest", help="data manifests").add_subparsers(
        dest="action", required=True
    )
    p = add("build", cmd_manifest_build, "build a manifest from a dataset on disk", manifest)
    p.add_argument("--layout", required=True, help="dataset layout: brats2021 or t1-table")
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
    p = add("check", cmd_manifest_check, "validate every row and file of a manifest", manifest)
    p.add_argument("manifest", help="manifest CSV")

    p = add(
        "data", cmd_data, "synthesise a bundle's default phantom set (cached); print its manifest"
    )
    p.add_argument("--bundle", default="brats_seg")
    p.add_argument("--profile", choices=("cpu", "gpu"), default=None)

    p = add("train", cmd_train, "train a bundle and log the run to MLflow")
    _bundle_args(p)
    p.add_argument("--data", default=None, help="manifest CSV (default: synthesised phantoms)")
    p.add_argument("--epochs", type=int, default=None, help="override the profile's max_epochs")
    p.add_argument("--profile", choices=("cpu", "gpu"), default=None, help="default: detected")
    p.add_argument(
        "--set", type=_key_value, action="append", metavar="KEY=VALUE", help="config override"
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

    p = add("evaluate", cmd_evaluate, "evaluate a run on its validation fold; log to the same run")
    _bundle_args(p)
    p.add_argument("--run", required=True, help="MLflow run id or checkpoint file")
    p.add_argument("--data", default=None, help="manifest (default: the run's own)")
    p.add_argument("--out", default=None, help="report directory")

    from mrivol.engine.evaluation import add_infer_arguments, main_infer

    p = add("infer", main_infer, "segment new scans (MC dropout: entropy and MI maps)")
    _bundle_args(p)
    add_infer_arguments(p)

    from mrivol.engine.seg_evaluation import add_evaluate_seg_arguments, main_evaluate_seg

    p = add("evaluate-seg", main_evaluate_seg, "BraTS Dice / HD95 / QU-BraTS of predictions")
    add_evaluate_seg_arguments(p)

    from mrivol.engine.preprocess import add_preprocess_arguments, main_preprocess

    p = add("preprocess", main_preprocess, "skull strip, N4, co-register, resample a manifest")
    add_preprocess_arguments(p)

    p = add("plan", cmd_plan, "nnU-Net v2-style plan (spacing, patch, topology) for a manifest")
    p.add_argument("--manifest", required=True, help="manifest CSV")
    p.add_argument("--out", required=True, help="plans JSON to write")
    p.add_argument("--gpu-memory-gb", type=float, default=8.0, help="GPU memory budget (GB)")
    p.add_argument("--workers", type=int, default=1, help="processes reading cases")

    from mrivol.engine.compare import add_compare_arguments, main_compare

    p = add("compare", main_compare, "table and chart of an experiment's runs")
    add_compare_arguments(p)

    p = add("mlflow-ui", cmd_mlflow_ui, "serve the MLflow UI of the local tracking store")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
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

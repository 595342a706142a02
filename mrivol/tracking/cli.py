"""``mrivol compare``, ``runs``, ``register``, ``export``, ``mlflow-ui``, ``mlflow-server``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

__all__ = ["register"]


def cmd_compare(args: argparse.Namespace) -> int:
    from mrivol.tracking.compare import main_compare

    return main_compare(args)


def cmd_mlflow_ui(args: argparse.Namespace) -> int:
    import mlflow

    from mrivol.paths import project_root
    from mrivol.tracking import default_tracking_uri, runs_url

    uri = default_tracking_uri()
    print(f"MLflow UI for {uri} on http://{args.host}:{args.port}")
    for exp in mlflow.MlflowClient(uri).search_experiments():
        if exp.name != "Default":
            print(f"  {exp.name}: {runs_url(exp.experiment_id, host=args.host, port=args.port)}")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", args.host, "--port", str(args.port)]
    return subprocess.call(cmd, cwd=project_root(), env=os.environ.copy())


def cmd_runs(args: argparse.Namespace) -> int:
    import mlflow

    from mrivol.tracking import default_tracking_uri
    from mrivol.tracking.stale_runs import find_stale_runs, fix_stale_runs

    uri = args.tracking_uri or default_tracking_uri()
    client = mlflow.MlflowClient(uri)
    experiments = [
        e.experiment_id
        for e in client.search_experiments()
        if args.experiment is None or e.name == args.experiment
    ]
    stale = (fix_stale_runs if args.fix_stale else find_stale_runs)(client, experiments)
    verb = "marked KILLED" if args.fix_stale else "stale (RUNNING, process gone)"
    for run in stale:
        print(f"{run.info.run_name} ({run.info.run_id}): {verb}")
    hint = "" if args.fix_stale else "; --fix-stale marks them"
    print(f"{len(stale)} stale run(s) in {uri}{hint}")
    return 0


def cmd_mlflow_server(args: argparse.Namespace) -> int:
    from mrivol.tracking.server import serve

    return serve(args)


def cmd_register(args: argparse.Namespace) -> int:
    from mrivol.tracking.models import register_run_model
    from mrivol.tracking.runs import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    version = register_run_model(args.run, args.name, alias=args.alias, tracking_uri=uri)
    alias = f" (alias {args.alias}: models:/{args.name}@{args.alias})" if args.alias else ""
    print(f"registered {args.name} version {version.version} from run {args.run}{alias}")
    print(f"  mrivol infer --model models:/{args.name}/{version.version} --input ... --out ...")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mrivol.tracking.export import main_export

    return main_export(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``compare``, ``runs``, ``mlflow-ui`` and ``mlflow-server`` to the ``mrivol`` parser."""
    from mrivol.tracking.compare import add_compare_arguments
    from mrivol.tracking.server import SERVER_HELP, add_server_arguments

    p = sub.add_parser("compare", help="table and chart of an experiment's runs")
    p.set_defaults(func=cmd_compare)
    add_compare_arguments(p)

    p = sub.add_parser("register", help="register a training run's model (MLflow registry)")
    p.set_defaults(func=cmd_register)
    p.add_argument("--run", required=True, help="training run id")
    p.add_argument("--name", required=True, help="registered model name, e.g. brats_seg")
    p.add_argument("--alias", default=None, help="alias moved to the new version (champion)")
    p.add_argument("--tracking-uri", default=None, help="store (default: MLFLOW_TRACKING_URI)")

    from mrivol.tracking.export import add_export_arguments

    p = sub.add_parser("export", help="TorchScript / ONNX export of a run's model, parity-checked")
    p.set_defaults(func=cmd_export)
    add_export_arguments(p)

    p = sub.add_parser("mlflow-ui", help="serve the MLflow UI of the local tracking store")
    p.set_defaults(func=cmd_mlflow_ui)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)

    p = sub.add_parser("runs", help="runs left RUNNING by killed processes (--fix-stale: KILLED)")
    p.set_defaults(func=cmd_runs)
    p.add_argument("--fix-stale", action="store_true", help="mark them KILLED")
    p.add_argument("--experiment", default=None, help="only this experiment (default: all)")
    p.add_argument("--tracking-uri", default=None, help="store (default: MLFLOW_TRACKING_URI)")

    p = sub.add_parser("mlflow-server", help=SERVER_HELP)
    p.set_defaults(func=cmd_mlflow_server)
    add_server_arguments(p)

"""Start and stop MLflow's own tracking server (``mlflow server``) on a loopback port.

Used by the tests (a real server with a sqlite or PostgreSQL backend store that a training run
logs to through ``MLFLOW_TRACKING_URI``) and by ``make mlflow-server`` (the team server of the
README, run in the foreground). Nothing here reimplements MLflow: this module only builds the
``mlflow server`` command line, waits for its ``/health`` endpoint and stops its process group.

Examples:
    >>> with mlflow_server("sqlite:////tmp/m/mlflow.db", "/tmp/m/art") as srv:  # doctest: +SKIP
    ...     os.environ["MLFLOW_TRACKING_URI"] = srv.url
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MlflowServer",
    "free_port",
    "add_server_arguments",
    "main_mlflow_server",
    "serve",
    "mlflow_server",
    "redact",
    "server_command",
    "start_mlflow_server",
    "stop_mlflow_server",
]

# `mlflow server` on a loaded 2-core machine needs ~25 s to migrate a new database and start
DEFAULT_START_TIMEOUT_S = 120.0
DEFAULT_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: its address, stores, process and log file."""

    url: str
    host: str
    port: int
    backend_uri: str
    artifacts_dir: Path
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, *, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's log (for error messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self.log_path})"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def redact(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (for messages and logs).

    Examples:
        >>> redact("postgresql://mlflow:secret@db:5432/mlflow")
        'postgresql://mlflow:***@db:5432/mlflow'
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# database drivers SQLAlchemy imports for a URI, and the pip package that provides each
DRIVER_PACKAGES = {
    "psycopg": '"psycopg[binary]==3.3.9"',  # SQLAlchemy >= 2.1's default for postgresql://
    "psycopg2": "psycopg2-binary==2.9.13",
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
}


def _check_backend(backend_uri: str) -> None:
    """Fail early, with what to do, when the backend store cannot work.

    The driver is resolved by SQLAlchemy itself (``postgresql://`` means psycopg 3 with
    SQLAlchemy 2.1, ``postgresql+psycopg2://`` psycopg2), exactly as ``mlflow server`` will.

    Raises:
        ValueError: the URI is not a database URI MLflow's SQL store accepts.
        ModuleNotFoundError: the URI's database driver is not installed (the message says which
            package to install).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme = backend_uri.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "mysql", "mssql"):
        raise ValueError(
            f"backend store {redact(backend_uri)!r} is not a database URI: use "
            "sqlite:///path/to/mlflow.db or postgresql://user:password@host:5432/db"
        )
    try:
        make_url(backend_uri).get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError) as err:
        raise ValueError(f"backend store {redact(backend_uri)!r}: {err}") from err
    except ModuleNotFoundError as err:
        package = DRIVER_PACKAGES.get(err.name or "", err.name)
        raise ModuleNotFoundError(
            f"backend store {redact(backend_uri)!r} needs the database driver {err.name!r}, "
            f"which is not installed: pip install {package}",
            name=err.name,
        ) from err
    if scheme == "sqlite":
        path = backend_uri.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def server_command(
    backend_uri: str,
    artifacts_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    allowed_hosts: Sequence[str] = (),
) -> list[str]:
    """The ``mlflow server`` command line: artifacts proxied by the server (``mlflow-artifacts:``).

    Args:
        backend_uri: SQLAlchemy URI of the backend store (sqlite or PostgreSQL).
        artifacts_dir: local folder behind ``--artifacts-destination``.
        host: interface to bind; loopback by default.
        port: TCP port.
        workers: uvicorn worker processes.
        allowed_hosts: extra ``Host`` headers to accept (MLflow accepts localhost and private IPs
            by default); e.g. ``("mlflow", "mlflow:*")`` behind a compose network name.

    Returns:
        The argument list, starting with this interpreter.

    Examples:
        >>> cmd = server_command("sqlite:///db", "/art", port=5001)
        >>> cmd[1:4], cmd[cmd.index("--port") + 1]
        (['-m', 'mlflow', 'server'], '5001')
    """
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri]
    cmd += ["--serve-artifacts", "--artifacts-destination", str(Path(artifacts_dir).resolve())]
    cmd += ["--host", host, "--port", str(port), "--workers", str(workers)]
    if allowed_hosts:
        cmd += ["--allowed-hosts", ",".join(allowed_hosts)]
    return cmd


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_mlflow_server(
    backend_uri: str,
    artifacts_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int = 1,
    allowed_hosts: Sequence[str] = (),
    log_path: str | Path | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> MlflowServer:
    """Start ``mlflow server`` in its own process group and wait until ``/health`` answers.

    Args:
        backend_uri: backend store (``sqlite:///...`` or ``postgresql://...``).
        artifacts_dir: folder for proxied artifacts (created).
        host: interface to bind (loopback by default).
        port: TCP port; a free one when ``None``.
        workers: uvicorn worker processes.
        allowed_hosts: extra accepted ``Host`` headers (see :func:`server_command`).
        log_path: server stdout/stderr; ``<artifacts_dir>/../mlflow-server.log`` by default.
        timeout_s: how long to wait for ``/health``.

    Returns:
        The running :class:`MlflowServer`; stop it with :func:`stop_mlflow_server`.

    Raises:
        RuntimeError: the server exited or did not answer in time (the message has its log).
    """
    _check_backend(backend_uri)
    artifacts_dir = Path(artifacts_dir).resolve()
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(host) if port is None else port
    log_path = Path(log_path) if log_path else artifacts_dir.parent / "mlflow-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = server_command(
        backend_uri, artifacts_dir, host=host, port=port, workers=workers,
        allowed_hosts=allowed_hosts,
    )  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no GenAI job runner
    env.pop("MLFLOW_TRACKING_URI", None)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=artifacts_dir.parent,
            env=env,
            start_new_session=True,  # its uvicorn workers share the group: stopped together
        )
    url = f"http://{host}:{port}"
    server = MlflowServer(url, host, port, backend_uri, artifacts_dir, process, log_path)
    deadline = time.monotonic() + timeout_s
    while not _healthy(url):
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server for {redact(backend_uri)} exited with code "
                f"{process.returncode} before answering on {url}/health (port taken? bad "
                f"backend URI?); its log {log_path}:\n{server.log_tail()}"
            )
        if time.monotonic() > deadline:
            stop_mlflow_server(server)
            raise RuntimeError(
                f"mlflow server for {redact(backend_uri)} did not answer on {url}/health within "
                f"{timeout_s:.0f} s; raise timeout_s on a slow machine; its log {log_path}:\n"
                f"{server.log_tail()}"
            )
        time.sleep(0.5)
    return server


def stop_mlflow_server(server: MlflowServer, *, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> int:
    """Stop the server's process group: SIGTERM, then SIGKILL after ``timeout_s``.

    Returns:
        The server process's exit code.
    """
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
    # workers may outlive the main process; the group is ours alone (start_new_session)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


@contextlib.contextmanager
def mlflow_server(
    backend_uri: str,
    artifacts_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int = 1,
    allowed_hosts: Sequence[str] = (),
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> Iterator[MlflowServer]:
    """Run ``mlflow server`` for the duration of a ``with`` block (see :func:`start_mlflow_server`).

    Examples:
        >>> with mlflow_server("sqlite:////tmp/m/mlflow.db", "/tmp/m/art") as s:  # doctest: +SKIP
        ...     mlflow.set_tracking_uri(s.url)
    """
    server = start_mlflow_server(
        backend_uri, artifacts_dir, host=host, port=port, workers=workers,
        allowed_hosts=allowed_hosts, timeout_s=timeout_s,
    )  # fmt: skip
    try:
        yield server
    finally:
        stop_mlflow_server(server)


SERVER_HELP = (
    "run MLflow's tracking server (sqlite or PostgreSQL backend, proxied artifacts) in the "
    "foreground until Ctrl-C"
)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m mrivol.tracking.server`` (``mrivol mlflow-server`` has the same)."""
    return add_server_arguments(
        argparse.ArgumentParser(prog="mrivol-mlflow-server", description=SERVER_HELP)
    )


def add_server_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``mrivol mlflow-server`` options to ``parser``."""
    parser.add_argument(
        "--backend-store-uri",
        default=None,
        help="sqlite:///path/mlflow.db or postgresql://user:pw@host:5432/db "
        "(default: <root>/mlruns/server/mlflow.db)",
    )
    parser.add_argument(
        "--artifacts-dir", default=None, help="default: <root>/mlruns/server/artifacts"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="TCP port (default 5000)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument(
        "--allowed-hosts", default="", help="extra Host headers, comma-separated (e.g. mlflow:*)"
    )
    return parser


def main_mlflow_server(argv: Sequence[str] | None = None) -> int:
    """``python -m mrivol.tracking.server [options]``: parse ``argv``, then :func:`serve`."""
    return serve(build_parser().parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; print the address to set as ``MLFLOW_TRACKING_URI``."""
    from mrivol.paths import project_root

    store = project_root() / "mlruns" / "server"
    backend = args.backend_store_uri or f"sqlite:///{store / 'mlflow.db'}"
    artifacts = Path(args.artifacts_dir) if args.artifacts_dir else store / "artifacts"
    hosts = tuple(h for h in args.allowed_hosts.split(",") if h)
    try:
        server = start_mlflow_server(
            backend, artifacts, host=args.host, port=args.port, workers=args.workers,
            allowed_hosts=hosts, log_path=artifacts.parent / "mlflow-server.log",
        )  # fmt: skip
    except (RuntimeError, ValueError, ModuleNotFoundError) as err:
        print(f"mlflow-server: error: {err}", file=sys.stderr)
        return 1
    print(f"MLflow server {server.url} (backend {redact(backend)}, artifacts {artifacts})")
    print(f"  export MLFLOW_TRACKING_URI={server.url}")
    print(f"  training runs: {server.url}/#/experiments/<id>/runs; log: {server.log_path}")
    print("  Ctrl-C stops it", flush=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, `kill` and a job scheduler's SIGTERM all stop the server's process group too
    # (SIGINT is set explicitly: a shell's background job inherits it ignored)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        code = server.process.wait()
        print(f"mlflow server exited with code {code}; its log: {server.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        stop_mlflow_server(server)
        print("mlflow server stopped")
        return 0
    finally:
        if server.process.poll() is None:
            stop_mlflow_server(server)


if __name__ == "__main__":
    sys.exit(main_mlflow_server())

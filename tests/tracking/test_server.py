"""A real `mlflow server` on 127.0.0.1 (sqlite, and PostgreSQL where its tools exist).

The fixture :func:`mlflow_http_server` is meant for reuse (a short training run that logs to a
server): it yields the running :class:`~mrivol.tracking.server.MlflowServer`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from mrivol.tracking import server as mlflow_server_module
from mrivol.tracking.server import (
    MlflowServer,
    free_port,
    mlflow_server,
    server_command,
    start_mlflow_server,
    stop_mlflow_server,
)


def _as_postgres_user() -> list[str]:
    """``initdb`` refuses root: run the PostgreSQL tools as ``postgres`` when we are root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def postgres_unavailable() -> str | None:
    """Why a throw-away PostgreSQL cluster cannot be started here, or ``None``."""
    missing = [tool for tool in ("initdb", "pg_ctl") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not on PATH (PostgreSQL server binaries not installed)"
    if importlib.util.find_spec("psycopg") is None:
        return 'the psycopg driver is not installed (pip install "psycopg[binary]==3.3.9")'
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb cannot run as root"
    return None


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a free loopback port; yields its SQLAlchemy URI."""
    # world-traversable folder: the cluster may run as the `postgres` user
    root = Path(tempfile.mkdtemp(prefix="mrivol-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    data, port, sudo = root / "data", free_port(), _as_postgres_user()
    run = {"check": True, "capture_output": True, "text": True}
    try:
        subprocess.run([*sudo, "initdb", "-D", str(data), "-U", "mlflow", "-A", "trust"], **run)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        start = ["pg_ctl", "-D", str(data), "-o", opts, "-l", str(root / "pg.log"), "-w", "start"]
        subprocess.run([*sudo, *start], **run)
        try:
            yield f"postgresql://mlflow@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*sudo, "pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"], **run)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _backend(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'mlflow.db'}"
        return
    if reason := postgres_unavailable():
        if os.environ.get("MRIVOL_REQUIRE_POSTGRES") == "1":  # CI: `make postgres` provides it
            pytest.fail(f"PostgreSQL backend required (MRIVOL_REQUIRE_POSTGRES=1): {reason}")
        pytest.skip(f"PostgreSQL backend not tested: {reason}")
    with postgres_cluster() as uri:
        yield uri


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def mlflow_http_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free 127.0.0.1 port, with proxied artifacts in a temp folder."""
    folder = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    with (
        _backend(request.param, folder) as backend,
        mlflow_server(backend, folder / "artifacts") as server,
    ):
        yield server


@pytest.mark.slow
def test_run_logged_through_tracking_uri(mlflow_http_server, monkeypatch, tmp_path):
    server = mlflow_http_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    mlflow.set_tracking_uri(None)  # forget any URI set by an earlier test: read the variable
    note = tmp_path / "note.txt"
    note.write_text("hello from a test")
    mlflow.set_experiment("server_test")
    with mlflow.start_run(run_name="server-run") as run:
        mlflow.log_params({"network": "unet", "amp": "False"})
        for epoch in (1, 2):
            mlflow.log_metric("val_mean_dice", 0.4 * epoch, step=epoch)
        mlflow.log_artifact(str(note))
    mlflow.set_tracking_uri(None)

    # read back through a fresh client of the same server, over HTTP
    client = mlflow.MlflowClient(tracking_uri=server.url)
    stored = client.get_run(run.info.run_id)
    assert stored.data.params == {"network": "unet", "amp": "False"}
    history = client.get_metric_history(run.info.run_id, "val_mean_dice")
    assert [(m.step, m.value) for m in history] == [(1, 0.4), (2, 0.8)]
    # the artifact went through the server's proxy into its --artifacts-destination
    assert stored.info.artifact_uri.startswith("mlflow-artifacts:")
    on_disk = list(server.artifacts_dir.rglob("note.txt"))
    assert len(on_disk) == 1 and on_disk[0].read_text() == "hello from a test"


# ---- fast checks of the start/wait/stop logic, with stand-ins for `mlflow server` ----------

# a stand-in server: starts a grandchild (like uvicorn's workers), then serves its folder over
# HTTP, where a file named `health` answers GET /health with 200
FAKE_SERVER = """
import subprocess, sys, http.server, functools
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open("worker.pid", "w").write(str(child.pid))
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=".")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def fake_server(monkeypatch, tmp_path):
    """Replace the `mlflow server` command line by ``script`` (run with the port as argument)."""

    def use(script: str) -> Path:
        monkeypatch.setattr(
            mlflow_server_module,
            "server_command",
            lambda backend, artifacts, *, port, **kw: [sys.executable, "-c", script, str(port)],
        )
        (tmp_path / "health").write_text("OK")
        return tmp_path

    return use


def test_start_waits_for_health_and_stop_ends_the_process_group(fake_server):
    folder = fake_server(FAKE_SERVER)
    with mlflow_server(f"sqlite:///{folder / 'm.db'}", folder / "artifacts", timeout_s=30) as srv:
        assert srv.url == f"http://127.0.0.1:{srv.port}" and srv.process.poll() is None
        worker = int((folder / "worker.pid").read_text())
        assert _pid_alive(worker)
    assert srv.process.poll() is not None
    deadline = time.monotonic() + 5
    while _pid_alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)  # the worker is reparented and reaped by init
    assert not _pid_alive(worker), "a worker of the server outlived stop_mlflow_server"


@pytest.mark.parametrize(
    ("script", "timeout_s", "message"),
    [("import sys; print('cannot bind'); sys.exit(3)", 30, "exited with code 3"),
     ("import time; time.sleep(60)", 1, "did not answer")],
    ids=["exits_early", "never_healthy"],
)  # fmt: skip
def test_start_failure_reports_the_log(fake_server, script, timeout_s, message):
    folder = fake_server(script)
    with pytest.raises(RuntimeError, match=message) as err:
        start_mlflow_server(
            f"sqlite:///{folder / 'm.db'}", folder / "artifacts", timeout_s=timeout_s
        )
    assert "its log" in str(err.value)
    if timeout_s == 30:
        assert "cannot bind" in str(err.value)


@pytest.mark.parametrize(
    ("backend", "error", "message"),
    [("file:///tmp/mlruns", ValueError, "not a database URI"),
     ("postgresql+psycopg2://u:secret@db:5432/mlflow", ModuleNotFoundError, "psycopg2-binary"),
     ("postgresql+nodriver://u:secret@db/mlflow", ValueError, "Can't load plugin")],
    ids=["file_store", "driver_not_installed", "unknown_driver"],
)  # fmt: skip
def test_bad_backend_fails_before_starting(monkeypatch, tmp_path, backend, error, message):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # as if psycopg2 were not installed
    with pytest.raises(error, match=message) as err:
        start_mlflow_server(backend, tmp_path / "artifacts")
    assert "secret" not in str(err.value)  # passwords are never printed


def test_server_command_proxies_artifacts_on_loopback(tmp_path):
    cmd = server_command(
        "sqlite:///x.db", tmp_path / "a", port=5123, allowed_hosts=("mlflow", "mlflow:*")
    )
    assert cmd[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--artifacts-destination") + 1] == str((tmp_path / "a").resolve())
    assert "--serve-artifacts" in cmd
    assert cmd[cmd.index("--backend-store-uri") + 1] == "sqlite:///x.db"
    assert cmd[cmd.index("--allowed-hosts") + 1] == "mlflow,mlflow:*"


def test_stop_is_idempotent(fake_server):
    folder = fake_server(FAKE_SERVER)
    server = start_mlflow_server(f"sqlite:///{folder / 'm.db'}", folder / "a", timeout_s=30)
    first = stop_mlflow_server(server)
    assert first == -signal.SIGTERM
    assert stop_mlflow_server(server) == first

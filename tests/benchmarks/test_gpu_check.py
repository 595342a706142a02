"""benchmarks/gpu_check.py: its CPU smoke run reports every measurement; without CUDA it refuses.

The real check needs a GPU; here ``--cpu-smoke`` runs a tiny version of every step (training
steps in float16 and bfloat16, the one-process DDP step, the sliding window) and the JSON on
its last line must carry every key the GPU run reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
NETS = ("unet", "dynunet")
MEASUREMENT = {"steps_per_s", "samples_per_s", "gpu_util_pct", "peak_mem_gib"}


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


@pytest.fixture(scope="module")
def smoke() -> dict:
    result = run("--cpu-smoke")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_smoke_report_header(smoke):
    assert smoke["benchmark"] == "gpu_check" and smoke["cpu_smoke"] is True
    assert smoke["device"] == "cpu" and smoke["ddp_backend"] == "gloo"
    assert smoke["errors"] == {}
    assert set(smoke["nets"]) == set(NETS)


@pytest.mark.parametrize("net", NETS)
def test_smoke_reports_every_measurement(smoke, net):
    report = smoke["nets"][net]
    assert report["params"] > 0 and report["batch"] >= 1 and len(report["patch"]) == 3
    for dtype in ("float16", "bfloat16"):
        train = report["train"][dtype]
        assert set(train) >= MEASUREMENT, (dtype, train)
        assert train["steps_per_s"] > 0
        assert set(train["gpu_util_pct"]) >= {"mean", "min", "max", "samples"}
    ddp = report["ddp"]
    assert MEASUREMENT | {"world_size", "amp_dtype", "vs_single"} <= set(ddp), ddp
    assert ddp["world_size"] == 1 and ddp["steps_per_s"] > 0
    window = report["sliding_window"]
    assert {"seconds", "case", "out_shape", "amp_dtype", "peak_mem_gib"} <= set(window), window
    assert window["seconds"] > 0
    assert window["out_shape"] == [1, 3, *window["case"]]  # three region channels, full case


def test_without_cuda_it_exits_non_zero_and_says_why():
    # an empty CUDA_VISIBLE_DEVICES hides every GPU, so this holds on a GPU machine as well
    result = run(CUDA_VISIBLE_DEVICES="")
    assert result.returncode != 0
    assert "needs a CUDA GPU" in result.stderr and "--cpu-smoke" in result.stderr
    assert result.stdout == ""

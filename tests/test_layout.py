"""The package layout keeps its promises: stages import only earlier stages, light imports stay
light, modules stay readable, and the bundles' YAML says each thing once."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mrivol.cli import STAGES
from mrivol.paths import bundles_root, checkout_root

PACKAGE = Path(__file__).resolve().parents[1] / "mrivol"
# pipeline order; a package may import itself and anything before it. io, paths and metrics
# are libraries every stage may use; tracking (MLflow) comes just before training; crossval
# (every fold trained, predicted and scored) uses training, inference and evaluation.
ORDER = [
    "__init__",
    "lazy",
    "io",
    "paths",
    "metrics",
    "data",
    "synth",
    "transforms",
    "preprocessing",
    "planning",
    "networks",
    "losses",
    "tracking",
    "training",
    "inference",
    "evaluation",
    "crossval",
    "cli",
]


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> set[str]:
    """Every mrivol module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mrivol"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mrivol"))
    return found


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_stage_imports_only_earlier_stages(path: Path):
    rel = path.relative_to(PACKAGE)
    own = rel.parts[0].removesuffix(".py")
    if own not in ORDER:
        pytest.fail(f"{rel}: package {own!r} is not in the pipeline order of this test")
    later = {
        m
        for m in _imports(path)
        if m.count(".") and _stage(m) in ORDER and ORDER.index(_stage(m)) > ORDER.index(own)
    }
    # a stage's own cli module may import a later stage's argument helpers; nothing else may
    if rel.name == "cli.py":
        later = {m for m in later if not m.endswith(".cli")}
    assert not later, f"{rel} ({own}) imports later stages: {sorted(later)}"


def test_every_stage_with_commands_is_in_the_order():
    assert all(s in ORDER for s in STAGES)
    assert not (PACKAGE / "engine").exists()


@pytest.mark.parametrize("package", ["mrivol.preprocessing", "mrivol.metrics"])
def test_light_packages_load_neither_the_training_stack_nor_mlflow(package: str):
    heavy = ["mlflow", "ignite", "monai.engines", "monai.handlers", "mrivol.training"]
    code = f"import sys, {package}; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{package} loads {out.stdout.strip()}"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_under_400_lines(path: Path):
    assert len(path.read_text().splitlines()) <= 400, f"{path.name}: split it by concept"


def _yaml_lines(path: Path) -> list[str]:
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _yaml_files() -> list[Path]:
    return sorted(bundles_root().glob("*/**/*.yaml"))


def test_no_six_line_yaml_run_is_shared_between_bundles():
    """What several bundles need lives once, in bundles/shared (``duplicates`` reads no YAML)."""
    owners: dict[tuple[str, ...], set[str]] = {}
    for path in _yaml_files():
        lines = _yaml_lines(path)
        for i in range(len(lines) - 5):
            owners.setdefault(tuple(lines[i : i + 6]), set()).add(
                path.relative_to(bundles_root()).parts[0]
            )
    shared = {run: who for run, who in owners.items() if len(who) > 1}
    assert not shared, "\n".join(f"{sorted(who)}: {run}" for run, who in list(shared.items())[:5])


def test_dollar_expressions_are_short_and_few():
    expressions = [
        (path.name, e)
        for path in _yaml_files()
        for line in _yaml_lines(path)
        for e in re.findall(r'"(\$[^"]*)"|^-\s+(\$.*)$', line)
        for e in [e[0] or e[1]]
    ]
    long = [(name, e) for name, e in expressions if len(e) > 80]
    assert not long, long
    assert len(expressions) <= 100, f"{len(expressions)} `$` expressions (231 before the layout)"


def test_network_overlays_do_not_branch_on_the_profile():
    overlays = sorted(bundles_root().glob("*/configs/networks/*.yaml"))
    branching = [p.name for p in overlays if "@profile" in p.read_text()]
    assert not branching, branching


def test_the_checkout_is_found():
    assert checkout_root() == PACKAGE.parent

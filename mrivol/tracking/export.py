"""``mrivol export``: a trained network as TorchScript or ONNX, checked against PyTorch.

The network is the MLflow model a training run logged (:mod:`mrivol.tracking.models`), so
plan-based networks (DynUNet) need no plan at export time. Both formats keep the batch and
spatial sizes free: TorchScript through MONAI's :func:`~monai.networks.utils.convert_to_torchscript`
(``torch.jit.script``; ``torch.jit.trace`` for networks that do not script, e.g. DynUNet with
deep supervision, which only traces the eval-mode path), ONNX through MONAI's
:func:`~monai.networks.utils.convert_to_onnx` (PyTorch's ``torch.export``-based exporter, with
``dynamic_axes`` on batch and space). The TorchScript file carries the model's mrivol settings
and config files as extra files (as MONAI's ``ckpt_export`` does), the ONNX file its settings as
metadata properties. ``--format bundle`` writes a MONAI bundle folder instead, its TorchScript
weights made by ``monai.bundle ckpt_export`` itself from the shipped configs
(:func:`export_bundle`).

The parity check is part of the export: the exported file is loaded back (TorchScript, ONNX
Runtime on the CPU) and run on a seeded random input of ``size`` and on a second one of half
that size with batch 2 (free sizes really are free); the largest absolute
difference to PyTorch is printed, and above ``tolerance`` the export fails.

Examples:
    >>> result = export_network(net, "onnx", "unet.onnx", in_channels=4)  # doctest: +SKIP
    >>> result.max_abs_diff <= 1e-4  # doctest: +SKIP
    True
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FORMATS",
    "ExportParityError",
    "ExportResult",
    "add_export_arguments",
    "export_bundle",
    "export_network",
    "load_exported",
    "main_export",
]

FILE_FORMATS = ("torchscript", "onnx")
FORMATS = (*FILE_FORMATS, "bundle")  # bundle: a MONAI bundle folder (export_bundle)
DEFAULT_TOLERANCE = 1e-4
AXES = {0: "batch", 2: "x", 3: "y", 4: "z"}


class ExportParityError(RuntimeError):
    """The exported network's output differs from PyTorch's by more than the tolerance."""


@dataclass
class ExportResult:
    """An exported file and how closely it matches PyTorch."""

    path: Path
    format: str
    max_abs_diff: float
    diffs: dict[str, float] = field(default_factory=dict)  # per checked input shape
    export_seconds: float = 0.0


def _script_or_trace(network: Any, example: Any, extra_files: Mapping[str, str]) -> Any:
    from monai.networks.utils import convert_to_torchscript

    try:
        return convert_to_torchscript(network, extra_files=dict(extra_files))
    except Exception:  # TorchScript cannot compile it: record the eval-mode graph instead
        return convert_to_torchscript(
            network, extra_files=dict(extra_files), use_trace=True, inputs=[example],
            check_trace=False,
        )  # fmt: skip


def load_exported(path: str | Path, fmt: str) -> Any:
    """A callable ``numpy (B, C, ...) -> numpy`` over an exported file (TorchScript or ONNX)."""
    import numpy as np
    import torch

    if fmt == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu").eval()

        def run_ts(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()

        return run_ts
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def export_network(
    network: Any,
    fmt: str,
    out: str | Path,
    *,
    in_channels: int,
    size: Sequence[int] = (64, 64, 64),
    tolerance: float = DEFAULT_TOLERANCE,
    metadata: Mapping[str, Any] | None = None,
    files: Sequence[Path] = (),
    seed: int = 0,
) -> ExportResult:
    """Export ``network`` (eval mode, CPU) to ``out`` and check it against PyTorch.

    Args:
        network: a ``torch.nn.Module`` mapping ``(B, in_channels, *size)`` to one tensor.
        fmt: ``torchscript`` or ``onnx``.
        out: the file to write.
        in_channels: input channels.
        size: spatial size of the parity input (also ``size // 2`` with batch 2; both must
            suit the network, e.g. divisible by its total stride).
        tolerance: the largest accepted absolute difference.
        metadata: settings stored in the file (TorchScript extra file / ONNX metadata).
        files: config files embedded in a TorchScript file.
        seed: of the random parity inputs.

    Returns:
        The :class:`ExportResult` with the largest absolute difference.

    Raises:
        ValueError: an unknown format (a MONAI bundle folder: :func:`export_bundle`).
        ExportParityError: the difference exceeds ``tolerance`` (the file is kept to look at).
    """
    if fmt not in FILE_FORMATS:
        raise ValueError(f"unknown file format {fmt!r}; choose one of {', '.join(FILE_FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    network = network.cpu().eval()
    inputs = _parity_inputs(in_channels, size, seed)
    info = json.dumps(dict(metadata or {}), default=str)
    t0 = time.perf_counter()
    if fmt == "torchscript":
        extra = {"metadata.json": info, **{f.name: Path(f).read_text() for f in files}}
        _script_or_trace(network, inputs[0], extra).save(str(out), _extra_files=extra)
    else:
        import onnx
        from monai.networks.utils import convert_to_onnx

        model = convert_to_onnx(
            network, [inputs[0]], input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": AXES, "logits": AXES}, filename=str(out),
        )  # fmt: skip
        onnx.helper.set_model_props(model, {"mrivol": info})
        onnx.save(model, str(out))
    return _check_parity(network, out, fmt, inputs, tolerance, time.perf_counter() - t0)


def _parity_inputs(in_channels: int, size: Sequence[int], seed: int) -> list[Any]:
    """Seeded random ``(1, C, *size)`` and ``(2, C, *size // 2)`` inputs."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    shapes = [(1, in_channels, *size), (2, in_channels, *(s // 2 for s in size))]
    return [torch.randn(shape, generator=generator) for shape in shapes]


def _check_parity(
    network: Any, out: Path, fmt: str, inputs: Sequence[Any], tolerance: float, seconds: float
) -> ExportResult:
    """Run the exported ``out`` and ``network`` on ``inputs``; fail above ``tolerance``."""
    import numpy as np
    import torch

    run = load_exported(out, fmt)
    diffs = {}
    for x in inputs:
        with torch.no_grad():
            expected = network(x).numpy()
        got = run(x.numpy())
        if got.shape != expected.shape:
            raise ExportParityError(
                f"{out}: output {got.shape} for {tuple(x.shape)}, not {expected.shape}"
            )
        diffs["x".join(map(str, x.shape))] = float(np.abs(got - expected).max())
    result = ExportResult(out, fmt, max(diffs.values()), diffs, seconds)
    if result.max_abs_diff > tolerance:
        raise ExportParityError(
            f"{out}: {fmt} differs from PyTorch by {result.max_abs_diff:.3g} (max abs) > "
            f"tolerance {tolerance:g}; per input {diffs}"
        )
    return result


BUNDLE_SETTINGS = "mrivol_settings.json"  # the model's settings, merged after the bundle configs


def export_bundle(
    model: Any,
    out: str | Path,
    *,
    size: Sequence[int] = (64, 64, 64),
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> ExportResult:
    """Write a packaged model as a MONAI bundle folder with TorchScript weights.

    The layout is the MONAI bundle specification's: ``configs/`` (the inference config files
    the model shipped with, ``metadata.json`` and :data:`BUNDLE_SETTINGS`: the training's
    top-level ``--set`` overrides, ``checkpoint`` pointing at ``models/model.pt`` and, for a
    plan-based network, its plan, so the configs rebuild the network without the training
    manifest), ``models/model.pt`` (the weights),
    ``models/model.ts`` written by MONAI's own ``monai.bundle ckpt_export`` from those configs
    and weights (scripted; traced at ``(1, C, *size)`` when the network does not script), and
    ``docs/README.md`` from the bundle when the checkout has it. The TorchScript file is then
    checked against the model as :func:`export_network` does. The folder is assembled next to
    ``out`` and renamed into place, so a failed export leaves nothing behind.

    Args:
        model: a :class:`mrivol.tracking.models.PackagedModel`.
        out: the bundle folder to create (must not exist, or be empty).

    Raises:
        FileExistsError: ``out`` exists and is not empty.
        ExportParityError: the TorchScript weights differ from the model's network.
    """
    import shutil

    import torch
    from monai.bundle import ckpt_export

    from mrivol.paths import bundles_root
    from mrivol.tracking.models import inference_overrides

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: choose a new bundle folder")
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("configs", "models", "docs"):
        (tmp / sub).mkdir(parents=True)
    shipped = [f for f in model.config_files() if f.is_file()]
    configs = []
    for f in shipped:
        shutil.copy2(f, tmp / "configs" / f.name)
        if f.name != "metadata.json":
            configs.append(tmp / "configs" / f.name)
    settings = inference_overrides(model.settings.get("overrides"))
    if "plans" in model.settings:
        settings["plans"] = model.settings["plans"]
    settings["checkpoint"] = "$@bundle_root + '/models/model.pt'"  # the bundle's own weights
    (tmp / "configs" / BUNDLE_SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")
    configs.append(tmp / "configs" / BUNDLE_SETTINGS)
    readme = bundles_root() / str(model.settings.get("bundle", "")) / "docs" / "README.md"
    if readme.is_file():
        shutil.copy2(readme, tmp / "docs" / "README.md")
    network = model.network.cpu().eval()
    torch.save(network.state_dict(), tmp / "models" / "model.pt")
    inputs = _parity_inputs(int(model.input_shape[1]) if model.input_shape else 4, size, seed)
    common = {
        "net_id": "network_def",
        "filepath": str(tmp / "models" / "model.ts"),
        "ckpt_file": str(tmp / "models" / "model.pt"),
        "meta_file": str(tmp / "configs" / "metadata.json"),
        "config_file": [str(f) for f in configs],
        "bundle_root": str(tmp),
    }
    t0 = time.perf_counter()
    try:
        ckpt_export(**common)
    except Exception:  # TorchScript cannot compile it (DynUNet): trace the eval-mode graph
        ckpt_export(
            **common, use_trace=True, input_shape=list(inputs[0].shape),
            converter_kwargs={"check_trace": False},
        )  # fmt: skip
    seconds = time.perf_counter() - t0
    result = _check_parity(network, tmp / "models" / "model.ts", "torchscript", inputs,
                           tolerance, seconds)  # fmt: skip
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    result.path = out / "models" / "model.ts"
    result.format = "bundle"
    return result


def add_export_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``mrivol export`` options to ``parser``."""
    parser.add_argument(
        "--run", required=True,
        help="training run id (its MLflow model), or a model URI (models:/NAME@champion)",
    )  # fmt: skip
    parser.add_argument("--format", choices=FORMATS, required=True, dest="fmt")
    parser.add_argument(
        "--out", required=True, type=Path,
        help="file to write (.ts / .onnx), or the folder of a MONAI bundle (--format bundle)",
    )  # fmt: skip
    parser.add_argument(
        "--size", type=int, nargs=3, default=[64, 64, 64], help="parity input size (64 64 64)"
    )
    parser.add_argument(
        "--tolerance", type=float, default=DEFAULT_TOLERANCE,
        help=f"largest accepted max abs difference to PyTorch (default {DEFAULT_TOLERANCE:g})",
    )  # fmt: skip
    parser.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI")
    return parser


def main_export(args: argparse.Namespace) -> int:
    """Run ``mrivol export``: 0 when the parity check passes, 1 when it fails."""
    import sys
    import tempfile

    from mrivol.tracking.models import load_packaged_model, run_model_uri
    from mrivol.tracking.runs import default_tracking_uri

    uri = args.run if ":/" in args.run else run_model_uri(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        model = load_packaged_model(
            uri, tracking_uri=args.tracking_uri or default_tracking_uri(), dst=tmp
        )
        in_channels = int(model.input_shape[1]) if model.input_shape else 4
        try:
            if args.fmt == "bundle":
                result = export_bundle(model, args.out, size=args.size, tolerance=args.tolerance)
            else:
                result = export_network(
                    model.network, args.fmt, args.out, in_channels=in_channels,
                    size=args.size, tolerance=args.tolerance,
                    metadata={**model.settings, "source": uri},
                    files=[f for f in model.config_files() if f.is_file()],
                )  # fmt: skip
        except ExportParityError as err:
            print(f"mrivol export: parity check failed: {err}", file=sys.stderr)
            return 1
        except FileExistsError as err:
            print(f"mrivol export: {err}", file=sys.stderr)
            return 2
    print(f"{result.format} written to {result.path} in {result.export_seconds:.1f} s")
    for shape, diff in result.diffs.items():
        print(f"  parity on {shape}: max abs difference {diff:.3g} (tolerance {args.tolerance:g})")
    return 0

"""``mrivol infer`` for classification bundles (ad_cls): class probabilities and Grad-CAM++.

For each T1 scan: the bundle's own training preprocessing (``infer#preprocessing`` of its
``inference.yaml``: skull strip, N4, affine to MNI152, brain box, z-score), the run's network,
softmax probabilities and the predicted class (a row of ``predictions.csv``), and a Grad-CAM++
map of the predicted class (``infer#explain``) saved **on the scan's own grid** with a PNG
overlay (``infer#overlay``).

The map is brought back by one resampling (:func:`cam_to_input_grid`): MONAI's ``Invertd``
cannot undo :class:`~mrivol.transforms.RegisterToTemplated` (not an ``InvertibleTransform``),
but everything the chain did is known in world coordinates: reorientation and resampling keep
them, the crop and pad are in the network input's ``MetaTensor`` affine, and the registration
stores its RAS matrix (MNI world -> scan world) in ``meta["mni"]``.

A scan that fails (unreadable file, a failing preprocessing step) is reported with its case
and file; the other scans are still classified, the failures are listed in ``failures.csv``
and on stderr, and the command exits 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from mrivol.inference.run_ref import RunRef, resolve_run
from mrivol.inference.save_case_outputs import save_nifti_atomic
from mrivol.io import write_csv_atomic
from mrivol.paths import bundle_dir
from mrivol.preprocessing.case import CaseError, load_volume
from mrivol.training.workflow import build_workflow

__all__ = [
    "CLASSIFICATION_TASK",
    "Classifier",
    "ClassifyResult",
    "bundle_task",
    "cam_to_input_grid",
    "classify",
    "classify_scan",
    "load_classifier",
    "main_classify",
    "scan_datalist",
]

CLASSIFICATION_TASK = "classification"
PREDICTIONS_CSV = "predictions.csv"
FAILURES_CSV = "failures.csv"


def bundle_task(bundle: str) -> str:
    """The ``task`` of a bundle's ``inference.yaml`` (``"segmentation"`` when it names none)."""
    from monai.bundle import ConfigParser

    path = bundle_dir(bundle) / "configs" / "inference.yaml"
    if not path.is_file():
        return "segmentation"
    return str(ConfigParser.load_config_file(path).get("task", "segmentation"))


def scan_datalist(input: str | Path) -> list[dict]:
    """The T1 scans to classify: a ``t1-table`` manifest, or every ``*.nii[.gz]`` under a folder.

    In a folder the case id is the file's path below it, without the suffix, ``/`` -> ``_``
    (``sub-01/ses-01/t1.nii.gz`` -> ``sub-01_ses-01_t1``).

    Raises:
        FileNotFoundError: ``input`` does not exist, or the folder holds no NIfTI file.
    """
    from mrivol.inference.infer import input_datalist

    path = Path(input)
    if path.is_file():
        return input_datalist(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path}: neither a manifest CSV nor a folder")
    files = sorted({*path.rglob("*.nii.gz"), *path.rglob("*.nii")})
    if not files:
        raise FileNotFoundError(f"--input {path}: no *.nii.gz or *.nii file in this folder")
    items = []
    for f in files:
        rel = f.relative_to(path).as_posix()
        case = rel.removesuffix(".gz").removesuffix(".nii").replace("/", "_")
        items.append({"image": [str(f)], "case_id": case})
    return items


@dataclass
class Classifier:
    """What classifying one scan needs, built from a bundle's inference config."""

    preprocessing: Callable[[dict], dict]
    network: torch.nn.Module
    inferer: Callable[..., torch.Tensor]
    explain: Callable[..., np.ndarray]  # gradcam_pp with the bundle's target layer
    overlay: Callable[..., None]  # save_gradcam_png(path, image, cam, title)
    class_names: list[str]
    device: torch.device


@dataclass
class ClassifyResult:
    """The rows written to ``predictions.csv`` and the failed scans (case, file, problem)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)


def load_classifier(
    ref: RunRef, bundle: str, settings: Mapping[str, Any] | None = None
) -> Classifier:
    """The bundle's inference preprocessing and explainer, and the network with ``ref``'s weights.

    Raises:
        ValueError: ``ref`` is a packaged MLflow model (its shipped configs predate
            classification inference; use the training run id).
    """
    if ref.config_files:
        raise ValueError(
            f"{ref.checkpoint}: classification inference of a packaged model (models:/...) is "
            "not supported yet; pass --run with the training run id or its model.pt"
        )
    settings = {
        **ref.overrides,
        "bundle_root": str(bundle_dir(bundle)),
        "checkpoint": str(ref.checkpoint),
        **dict(settings or {}),
    }
    logging.getLogger("ignite").setLevel(logging.WARNING)
    parser = build_workflow(
        bundle, "inference", profile=ref.profile, net=ref.net, settings=settings
    ).parser
    device = parser.get_parsed_content("device")
    network = parser.get_parsed_content("network")
    state = torch.load(ref.checkpoint, map_location=device, weights_only=True)
    network.load_state_dict(state)
    network.eval()
    return Classifier(
        preprocessing=parser.get_parsed_content("infer#preprocessing"),
        network=network,
        inferer=parser.get_parsed_content("inferer"),
        explain=parser.get_parsed_content("infer#explain"),
        overlay=parser.get_parsed_content("infer#overlay"),
        class_names=[str(c) for c in parser.get_parsed_content("class_names")],
        device=device,
    )


def cam_to_input_grid(
    cam: np.ndarray,
    *,
    cam_affine: np.ndarray,
    mni_to_scan: np.ndarray,
    affine: np.ndarray,
    shape: Sequence[int],
) -> np.ndarray:
    """Resample a map from the network's input grid onto the scan's own grid (linear).

    A scan voxel ``v`` lies at world ``affine @ v``; the registration moved the point at MNI
    world ``y`` to scan world ``mni_to_scan @ y``, and the map's voxel ``u`` lies at MNI world
    ``cam_affine @ u``. So ``u = cam_affine^-1 @ mni_to_scan^-1 @ affine @ v``. Scan voxels
    outside the network's field of view get 0.

    Args:
        cam: map (H, W, D) on the network input grid.
        cam_affine: its 4x4 RAS affine (MNI world, crop and pad included).
        mni_to_scan: 4x4 RAS matrix MNI world -> scan world (``meta["mni"]["matrix_ras"]``,
            written by :class:`~mrivol.transforms.RegisterToTemplate`).
        affine: the scan's 4x4 RAS affine (nibabel's).
        shape: the scan's (X, Y, Z).

    Returns:
        Float32 array of ``shape``.

    Examples:
        >>> cam = np.ones((4, 4, 4), np.float32)
        >>> cam_to_input_grid(cam, cam_affine=np.eye(4), mni_to_scan=np.eye(4),
        ...                   affine=np.eye(4), shape=(2, 2, 6))[0, 0].tolist()
        [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    """
    from scipy import ndimage as ndi

    voxels = np.linalg.inv(np.asarray(cam_affine, dtype=np.float64))
    voxels = voxels @ np.linalg.inv(np.asarray(mni_to_scan, dtype=np.float64))
    voxels = voxels @ np.asarray(affine, dtype=np.float64)
    out = ndi.affine_transform(
        np.asarray(cam, dtype=np.float32), voxels[:3, :3], offset=voxels[:3, 3],
        output_shape=tuple(int(s) for s in shape), order=1, mode="constant", cval=0.0,
    )  # fmt: skip
    return out.astype(np.float32)


def _gradcam_paths(out: Path, case: str) -> tuple[Path, Path]:
    return out / f"{case}_gradcam.nii.gz", out / f"{case}_gradcam.png"


def classify_scan(classifier: Classifier, item: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Classify one scan; write its Grad-CAM++ NIfTI (on the scan's grid) and PNG overlay.

    Returns:
        The ``predictions.csv`` row: ``case``, ``p_<class>`` for every class, ``predicted``.

    Raises:
        CaseError: the file cannot be read, or a preprocessing step fails on it.
    """
    case, path = str(item["case_id"]), str(item["image"][0])
    load_volume(path, case=case, column="t1")  # the whole gzip stream, NaNs, a constant image
    try:
        data = classifier.preprocessing({k: v for k, v in item.items() if k != "label"})
    except Exception as err:
        raise CaseError(case, path, f"preprocessing failed ({type(err).__name__}: {err})") from err
    image = data["image"]
    x = torch.as_tensor(image)[None].float().to(classifier.device)
    with torch.no_grad():
        logits = classifier.inferer(x, classifier.network)
    probs = torch.softmax(logits.float(), dim=1)[0].cpu().numpy().astype(np.float64)
    predicted = int(np.argmax(probs))
    cam = classifier.explain(classifier.network, x, class_idx=predicted)
    scan = nib.load(path)
    mni = getattr(image, "meta", {}).get("mni")
    if not mni:  # never guess: an identity here would misplace the map by the registration
        raise CaseError(case, path, "the preprocessing stored no MNI registration (meta['mni'])")
    matrix = mni["matrix_ras"]
    cam_in = cam_to_input_grid(
        cam, cam_affine=np.asarray(image.affine), mni_to_scan=np.asarray(matrix),
        affine=scan.affine, shape=scan.shape[:3],
    )  # fmt: skip
    nii_path, png_path = _gradcam_paths(out, case)
    save_nifti_atomic(nib.Nifti1Image(cam_in, scan.affine), scan.affine, nii_path)
    name = classifier.class_names[predicted]
    shown = nib.as_closest_canonical(nib.Nifti1Image(np.asanyarray(scan.dataobj), scan.affine))
    heat = nib.as_closest_canonical(nib.Nifti1Image(cam_in, scan.affine))  # RAS for display
    classifier.overlay(
        png_path,
        np.asarray(shown.dataobj, dtype=np.float32),
        np.asarray(heat.dataobj),
        f"{case}: {name} (p = {probs[predicted]:.2f})",
    )
    row: dict[str, Any] = {"case": case}
    row.update({f"p_{c}": float(p) for c, p in zip(classifier.class_names, probs, strict=True)})
    row["predicted"] = name
    return row


def _merge_predictions(out: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``predictions.csv`` atomically: earlier rows of other cases kept, then ``rows``."""
    import pandas as pd

    path = out / PREDICTIONS_CSV
    new = {r["case"] for r in rows}
    old: list[dict[str, Any]] = []
    if path.is_file():
        previous = pd.read_csv(path, dtype={"case": str})
        if list(previous.columns) == list(rows[0]):
            old = [r for r in previous.to_dict("records") if r["case"] not in new]
    write_csv_atomic(sorted(old + rows, key=lambda r: str(r["case"])), path)


def classify(
    *,
    bundle: str,
    run: str,
    input: str | Path,
    out: str | Path,
    overrides: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ClassifyResult:
    """Classify every scan of ``input`` (see :func:`scan_datalist`) with ``run``'s network.

    Writes to ``out``: ``predictions.csv`` (case, ``p_<class>``, predicted; rows of earlier
    runs for other cases kept), ``<case>_gradcam.nii.gz`` (Grad-CAM++ of the predicted class,
    in [0, 1], on the scan's grid: same shape and affine) and ``<case>_gradcam.png``; with
    failures, ``failures.csv`` (case, file, problem). Every file is written atomically.

    Args:
        bundle: a bundle whose ``inference.yaml`` has ``task: classification`` (ad_cls).
        run: MLflow run id or checkpoint file.
        input: ``t1-table`` manifest CSV or folder of NIfTI scans.
        out: output folder.
        overrides: further config overrides.
        **kwargs: passed to :func:`resolve_run` (``net``, ``profile``, ``fold``, ``tracking_uri``).

    Returns:
        The rows written and the failed scans; failed scans do not stop the others.
    """
    ref = resolve_run(run, **kwargs)
    classifier = load_classifier(ref, bundle, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = ClassifyResult()
    for item in scan_datalist(input):
        case, path = str(item["case_id"]), str(item["image"][0])
        try:
            result.rows.append(classify_scan(classifier, item, out))
        except CaseError as err:
            result.failed.append((err.case, err.file, err.problem))
        except Exception as err:  # a failure after preprocessing: still name case and file
            result.failed.append((case, path, f"{type(err).__name__}: {err}"))
        else:
            continue
        print(f"FAILED case {case}: {path}: {result.failed[-1][2]}", file=sys.stderr, flush=True)
    if result.rows:
        _merge_predictions(out, result.rows)
    failures = [{"case": c, "file": f, "problem": p} for c, f, p in result.failed]
    if failures:
        write_csv_atomic(failures, out / FAILURES_CSV)
    else:
        (out / FAILURES_CSV).unlink(missing_ok=True)
    return result


def main_classify(args: argparse.Namespace) -> int:
    """``mrivol infer`` for a classification bundle; 0 when every scan was classified, else 1.

    Raises:
        ValueError: a segmentation-only option (``--mc-samples`` > 1, ``--tta``,
            ``--submission``, ``--shard``, ``--prob-dtype`` uint16) was given.
    """
    unsupported = [
        name
        for name, given in (
            ("--mc-samples > 1", (getattr(args, "mc_samples", 1) or 1) > 1),
            ("--tta", getattr(args, "tta", False)),
            ("--submission", getattr(args, "submission", False)),
            ("--shard", getattr(args, "shard", None) is not None),
            ("--prob-dtype", getattr(args, "prob_dtype", "float32") != "float32"),
        )
        if given
    ]
    if unsupported:
        raise ValueError(
            f"bundle {args.bundle} classifies scans: {', '.join(unsupported)} only apply to "
            "segmentation bundles; run without them"
        )
    from mrivol.training.workflow import default_network

    result = classify(
        bundle=args.bundle,
        run=args.run,
        input=args.input,
        out=args.out,
        net=args.net or default_network(args.bundle),
        fold=args.fold,
    )
    out = Path(args.out)
    print(
        f"{len(result.rows)} scan(s) classified: {out / PREDICTIONS_CSV}, Grad-CAM++ maps "
        f"<case>_gradcam.nii.gz (on each scan's grid) and .png in {out}"
    )
    if result.failed:
        print(
            f"{len(result.failed)} scan(s) FAILED (listed in {out / FAILURES_CSV}):",
            file=sys.stderr,
        )
        for case, file, problem in result.failed:
            print(f"  case {case}: {file}: {problem}", file=sys.stderr)
        return 1
    return 0

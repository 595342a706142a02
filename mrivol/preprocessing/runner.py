"""``mrivol preprocess``: run the preprocessing chain over a manifest, cached and resumable.

Output folder::

    out_dir/manifest.csv                 same layout, dataset_root "cases" (successful cases)
    out_dir/cases/<case>/<case>_<col>.nii.gz, <case>_brainmask.nii.gz, <case>_qc.png,
                         <case>_steps.json, .preprocess.json   (cache key; written last)
    out_dir/qc.csv                       one row per case and step: seconds and scores
    out_dir/failures.csv                 case, file, problem of every failed case

A case is processed in ``out_dir/.tmp/<case>-<pid>/`` and moved into ``cases/`` with one
``os.replace``, so a killed run leaves no partial case; the next run deletes ``.tmp`` and skips
every case whose cache key (sha256 of its input files + steps + step parameters) matches.
Workers are processes; each gets ``cores // workers`` threads for ITK, torch and OpenMP.

Examples:
    >>> res = preprocess_manifest("data_manifests/brats2021.csv", "prep/",  # doctest: +SKIP
    ...                           steps=["coregister", "skullstrip", "n4", "resample"], workers=2)
    >>> res.failed  # [] when every case went through  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mrivol.data.manifest import LAYOUTS, read_manifest
from mrivol.io import write_csv_atomic
from mrivol.paths import bundle_dir

__all__ = [
    "PREPROCESS_VERSION",
    "PreprocessResult",
    "add_preprocess_arguments",
    "default_config_path",
    "load_preprocess_config",
    "main_preprocess",
    "preprocess_manifest",
]

#: Bumped when the same inputs and config would give other outputs (part of the cache key).
PREPROCESS_VERSION = "1"
_MARKER = ".preprocess.json"


@dataclass
class PreprocessResult:
    """Summary of :func:`preprocess_manifest`.

    Attributes:
        done: cases processed in this run.
        cached: cases skipped because their outputs matched the cache key.
        failed: ``(case_id, file, problem)`` of every failed case.
        manifest: the new manifest (``None`` if no case succeeded).
        qc_csv: the QC table.
        rows: the QC rows (one per case and step).
    """

    done: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    manifest: Path | None = None
    qc_csv: Path | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


def default_config_path() -> Path:
    """``bundles/preprocess/configs/preprocess.yaml`` of the project."""
    return bundle_dir("preprocess") / "configs" / "preprocess.yaml"


def load_preprocess_config(config: str | Path | dict | None = None) -> dict:
    """Read the step parameters: a dict as given, else the bundle YAML (unparsed values)."""
    if isinstance(config, dict):
        return config
    from monai.bundle import ConfigParser

    return dict(ConfigParser.load_config_files(str(config or default_config_path())))


def set_threads(threads: int) -> None:
    """Limit ITK, torch and OpenMP/BLAS to ``threads`` in this process (worker initializer)."""
    import SimpleITK as sitk
    import torch

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):  # fmt: skip
        os.environ[var] = str(threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    torch.set_num_threads(threads)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        return f"unreadable:{e.__class__.__name__}"
    return h.hexdigest()


def cache_key(row: dict, columns: Sequence[str], steps: Sequence[str], config: dict) -> str:
    """sha256 of the case's input files, the steps and their parameters."""
    params = {s: config.get(s) for s in steps}
    payload = {
        "version": PREPROCESS_VERSION, "steps": list(steps), "params": params,
        "reference": config.get("reference"), "qc_png": (config.get("qc") or {}).get("png", True),
        "files": {c: _file_digest(row[c]) for c in columns},
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _cached(case_dir: Path, key: str) -> dict | None:
    marker = case_dir / _MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if info.get("key") != key or not all((case_dir / f).is_file() for f in info["files"].values()):
        return None
    return info


def process_case(row: dict, out_dir: str, layout_name: str, steps: tuple[str, ...],
                 config: dict) -> tuple[str, str, dict]:  # fmt: skip
    """Process one case into ``out_dir/cases/<case>`` atomically (runs in a worker).

    Returns:
        ``(case_id, status, info)``: status ``"done"``, ``"cached"`` or ``"failed"``; info is
        the marker dict, or ``{"file", "problem"}`` for a failure.
    """
    from mrivol.preprocessing.case import CaseError, run_case, save_case

    layout = LAYOUTS[layout_name]
    case = row["case_id"]
    final = Path(out_dir) / "cases" / case
    key = cache_key(row, layout.path_columns, steps, config)
    if info := _cached(final, key):
        return case, "cached", info
    tmp = Path(out_dir) / ".tmp" / f"{case}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        result = run_case(row, images=layout.images, label=layout.label, steps=steps,
                          config=config, label_values=layout.label_values)  # fmt: skip
        files = save_case(result, tmp, case=case, images=layout.images, label=layout.label,
                          png=(config.get("qc") or {}).get("png", True))  # fmt: skip
        info = {"key": key, "case_id": case, "steps": list(steps), "files": files,
                "rows": result.rows}  # fmt: skip
        (tmp / _MARKER).write_text(json.dumps(info, indent=1, default=float))
        if final.exists():  # stale outputs of another key: move aside, then replace
            trash = Path(out_dir) / ".tmp" / f"{case}-old-{os.getpid()}"
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        return case, "done", info
    except CaseError as e:
        return case, "failed", {"file": e.file, "problem": e.problem}
    except Exception as e:  # isolated: recorded with its case, the other cases go on
        return case, "failed", {"file": row.get(layout.images[0], ""),
                                "problem": f"{type(e).__name__}: {e}"}  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def preprocess_manifest(
    manifest: str | Path,
    out_dir: str | Path,
    *,
    steps: Sequence[str] | None = None,
    workers: int = 1,
    config: str | Path | dict | None = None,
    threads_per_worker: int | None = None,
    progress: bool = True,
) -> PreprocessResult:
    """Preprocess every case of a manifest into ``out_dir`` (see the module docstring).

    Args:
        manifest: input manifest CSV (any registered layout).
        out_dir: output folder (created; one run at a time, guarded by a lock file).
        steps: subset of :data:`~mrivol.preprocessing.case.STEP_ORDER`; default the
            config's ``steps``. They always run in ``STEP_ORDER``.
        workers: worker processes (1: in this process).
        config: step parameters: a dict, a YAML path, or ``None`` for the bundle's
            ``bundles/preprocess/configs/preprocess.yaml``.
        threads_per_worker: ITK/torch threads per worker; default ``cores // workers``.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`PreprocessResult`; failures are recorded there and in ``failures.csv``.

    Raises:
        ValueError: on an unknown step or ``workers < 1``.
        BlockingIOError: if another run holds ``out_dir``.
    """
    from mrivol.preprocessing.case import STEP_ORDER

    cfg = load_preprocess_config(config)
    steps = tuple(steps if steps is not None else cfg.get("steps", STEP_ORDER[:4]))
    unknown = [s for s in steps if s not in STEP_ORDER]
    if unknown or workers < 1:
        raise ValueError(f"unknown step(s) {unknown} (known: {list(STEP_ORDER)}) or workers "
                         f"{workers} < 1")  # fmt: skip
    steps = tuple(s for s in STEP_ORDER if s in steps)
    df = read_manifest(manifest)
    layout = LAYOUTS[df.attrs["layout"]]
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".lock", "w")  # noqa: SIM115  (held for the whole run)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        shutil.rmtree(out / ".tmp", ignore_errors=True)  # leftovers of a killed run
        rows = df.to_dict("records")
        threads = threads_per_worker or max(1, _cores() // workers)
        res = PreprocessResult()
        outcomes: dict[str, tuple[str, dict]] = {}
        bar = tqdm(total=len(rows), desc="preprocess", unit="case", disable=not progress)
        if workers == 1:
            set_threads(threads)
            for row in rows:
                case, status, info = process_case(row, str(out), layout.name, steps, cfg)
                outcomes[case] = (status, info)
                bar.update()
        else:
            import mrivol.preprocessing.case  # noqa: F401  (imported once, inherited)

            # fork: workers inherit the imports (spawn re-imports torch/MONAI/ITK per worker,
            # seconds each); threads are set again in every worker by the initializer
            ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=set_threads,
                                     initargs=(threads,)) as pool:  # fmt: skip
                futures = [pool.submit(process_case, r, str(out), layout.name, steps, cfg)
                           for r in rows]  # fmt: skip
                for fut in as_completed(futures):
                    case, status, info = fut.result()
                    outcomes[case] = (status, info)
                    bar.update()
        bar.close()
        _write_outputs(df, layout, out, outcomes, res)
        return res
    finally:
        shutil.rmtree(out / ".tmp", ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _write_outputs(df, layout, out: Path, outcomes: dict, res: PreprocessResult) -> None:
    """Write qc.csv, failures.csv and the new manifest (atomically) from the outcomes."""
    manifest_rows = []
    for row in df.to_dict("records"):
        status, info = outcomes[row["case_id"]]
        if status == "failed":
            res.failed.append((row["case_id"], info["file"], info["problem"]))
            continue
        (res.done if status == "done" else res.cached).append(row["case_id"])
        res.rows += [r | {"status": status} for r in info["rows"]]
        new = {c: row[c] for c in layout.columns}
        new["dataset_root"] = "cases"
        for col in layout.path_columns:
            new[col] = f"{row['case_id']}/{info['files'][col]}"
        manifest_rows.append(new)
    columns = ["case_id", "step", "seconds", "status"]
    columns += sorted({k for r in res.rows for k in r} - set(columns))
    qc_rows = [{c: r.get(c, "") for c in columns} for r in res.rows]
    res.qc_csv = write_csv_atomic(qc_rows, out / "qc.csv")
    failures = [{"case_id": c, "file": f, "problem": p} for c, f, p in res.failed]
    if failures:
        write_csv_atomic(failures, out / "failures.csv")
    else:
        (out / "failures.csv").unlink(missing_ok=True)
    if manifest_rows:
        res.manifest = write_csv_atomic(manifest_rows, out / "manifest.csv")


def add_preprocess_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``mrivol preprocess`` options to ``parser``."""
    from mrivol.preprocessing.case import STEP_ORDER

    parser.add_argument("--manifest", required=True, help="input manifest CSV")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--steps", nargs="+", choices=STEP_ORDER, default=None,
                        help="steps to run (default: the config's steps)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--config",
        default=None,
        help="step parameters (default bundles/preprocess/configs/preprocess.yaml)",
    )
    parser.add_argument(
        "--threads-per-worker",
        type=int,
        default=None,
        help="ITK/torch threads per worker (default cores // workers)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main_preprocess(args: argparse.Namespace) -> int:
    """Run :func:`preprocess_manifest` from parsed arguments; print a summary.

    Returns:
        0 if every case succeeded, 1 otherwise (failures listed on stderr).
    """
    res = preprocess_manifest(
        args.manifest, args.out, steps=args.steps, workers=args.workers, config=args.config,
        threads_per_worker=getattr(args, "threads_per_worker", None),
        progress=not getattr(args, "no_progress", False),
    )  # fmt: skip
    print(f"preprocess: {len(res.done)} done, {len(res.cached)} cached, {len(res.failed)} failed; "
          f"manifest {res.manifest}, QC {res.qc_csv}")  # fmt: skip
    for case, file, problem in res.failed:
        print(f"FAILED {case}: {file}: {problem}", file=sys.stderr)
    return 1 if res.failed else 0


if __name__ == "__main__":  # python -m mrivol.preprocessing.runner --manifest M --out DIR
    sys.exit(main_preprocess(add_preprocess_arguments(argparse.ArgumentParser()).parse_args()))

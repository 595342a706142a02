"""The BraTS 2025 rules: the official evaluator ``brats-evaluation`` (on ``panoptica``), per case.

BraTS 2025 ranks with the challenge's own package (PyPI ``brats-evaluation``, built on
``panoptica``): connected components per region, a maximum bipartite matching of predicted and
reference instances on Dice, then per region instance ("lesion-wise") and global Dice, NSD and
HD95, with one bundled configuration per challenge. mrivol does not re-implement it: this module
runs the package's own :func:`brats_evaluation.evaluate_single_exam` (what its ``brats-evaluate``
command runs for every case) and renames its fields the way ``brats-parse-metrics seg``
(:func:`brats_evaluation.parse_seg_results`) reports them:

=====================  ====================  ============================================
mrivol column          evaluator field       meaning (``brats-parse-metrics`` column)
=====================  ====================  ============================================
``lesionwise_dice``    ``sq_dsc``            mean Dice of the matched instances
                                             (``lesionwise_dsc_mean_<region>``)
``lesionwise_hd95``    ``sq_hd95``           mean HD95 of the matched instances (mm)
``lesionwise_nsd``     ``sq_nsd``            mean normalised surface Dice of the matches
``num_tp/fp/fn``       ``tp``, ``fp``, ``fn``  matched, unmatched predicted, unmatched reference
``lesionwise_f1``      ``rq``                detection F1 (recognition quality)
``panoptic_dice``      ``pq_dsc``            panoptic quality: F1 x lesion-wise Dice
``global_dice``        ``global_bin_dsc``    whole-region Dice
``global_hd95``        ``global_bin_hd95``   whole-region HD95, ``inf`` -> 373 mm as the parser
``global_nsd``         ``global_bin_nsd``    whole-region normalised surface Dice
=====================  ====================  ============================================

Unlike the 2023 / 2024 rules (:mod:`mrivol.metrics.lesionwise`), misses and false positives do
not lower ``lesionwise_dice`` here: they enter through the F1 and panoptic quality. Regions are
the configuration's (GLI: ``wt, tc, et, netc, snfh, rc``), labels BraTS 2023+ (1 NETC/NCR,
2 SNFH/ED, 3 ET, 4 RC).

The package pins ``numpy<2.3`` and ``pandas<3``; README ("BraTS 2025 evaluator") says how the
project's pins were aligned with it.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "BRATS2025_CONFIGS",
    "BRATS2025_FIELDS",
    "evaluate_2025",
    "evaluate_2025_case",
    "load_2025_evaluator",
]

#: mrivol challenge names -> the package's bundled configurations.
BRATS2025_CONFIGS: dict[str, str] = {
    "BraTS2025-GLI": "gli",
    "BraTS2025-PED": "ped",
    "BraTS2025-MET": "mets",
    "BraTS2025-MEN": "MenPre",
    "BraTS2025-MEN-RT": "MenRT",
    "BraTS2025-GoAT": "GoAT",
}

#: mrivol column -> the evaluator's field (see the module docstring).
BRATS2025_FIELDS: dict[str, str] = {
    "lesionwise_dice": "sq_dsc",
    "lesionwise_hd95": "sq_hd95",
    "lesionwise_nsd": "sq_nsd",
    "num_tp": "tp",
    "num_fp": "fp",
    "num_fn": "fn",
    "lesionwise_f1": "rq",
    "panoptic_dice": "pq_dsc",
    "global_dice": "global_bin_dsc",
    "global_hd95": "global_bin_hd95",
    "global_nsd": "global_bin_nsd",
}

_INF_HD95 = 373.0  # what brats-parse-metrics writes for an infinite global HD95


@lru_cache(maxsize=8)
def load_2025_evaluator(challenge: str) -> Any:
    """The package's ``Panoptica_Evaluator`` for a challenge (loaded once per process).

    Raises:
        ValueError: unknown challenge (the message lists the names).
        ImportError: ``brats-evaluation`` is not installed.
    """
    if challenge not in BRATS2025_CONFIGS:
        raise ValueError(
            f"Unknown BraTS 2025 challenge {challenge!r}; use one of {sorted(BRATS2025_CONFIGS)}."
        )
    try:
        from brats_evaluation import config_path
        from panoptica import Panoptica_Evaluator
    except ImportError as err:
        raise ImportError(
            "the BraTS 2025 evaluator needs `brats-evaluation` (and panoptica), the `brats2025` "
            "extra: `pip install -c requirements.lock -e '.[brats2025]'` or `make venv`"
        ) from err
    return Panoptica_Evaluator.load_from_config(str(config_path(BRATS2025_CONFIGS[challenge])))


def _value(field: str, value: Any) -> Any:
    if value is None:
        return math.nan
    if field == "global_bin_hd95" and math.isinf(value):
        return _INF_HD95
    return value


def evaluate_2025_case(
    case: str, pred_path: str | Path, truth_path: str | Path, challenge: str
) -> list[dict[str, Any]]:
    """Score one case with the official 2025 evaluator.

    Returns:
        One row per region of the challenge's configuration: ``case``, ``region`` (lower case)
        and the columns of :data:`BRATS2025_FIELDS`.

    Raises:
        FileNotFoundError: a file is missing (the message names the case and the file).
        ValueError: a file is truncated or corrupted (named with its case), the evaluator
            failed on the case (the message names the case, both files and the evaluator's
            error), or the challenge is unknown.
    """
    from brats_evaluation import evaluate_single_exam

    _check_file(case, "prediction", Path(pred_path))
    _check_file(case, "truth", Path(truth_path))
    result = evaluate_single_exam(
        prediction_filepath=str(pred_path),
        reference_filepath=str(truth_path),
        subject_identifier=case,
        evaluator=load_2025_evaluator(challenge),
    )
    if "error" in result:
        raise ValueError(
            f"case {case!r}: the BraTS 2025 evaluator failed on {pred_path} (prediction) and "
            f"{truth_path} (truth): {result['error']}"
        )
    return [
        {
            "case": case,
            "region": str(region).lower(),
            **{k: _value(f, metrics.get(f)) for k, f in BRATS2025_FIELDS.items()},
        }
        for region, metrics in result.items()
        if isinstance(metrics, dict)
    ]


def _check_file(case: str, role: str, path: Path) -> None:
    """Fail on a missing, truncated or corrupted file, naming the case and the file.

    The evaluator reads ``.nii.gz`` with SimpleITK, which fills a truncated file with zeros
    without a word (a truncated prediction was scored WT Dice 0.84, no error), and neither
    SimpleITK nor nibabel reaches the gzip CRC (FACTS.md); so the stream is decompressed to its
    end first (milliseconds for a label map).
    """
    if not path.is_file():
        raise FileNotFoundError(f"case {case!r}: the {role} file {path} does not exist")
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as f:
                while f.read(1 << 24):
                    pass
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(
                f"case {case!r}: the {role} file {path} is truncated or corrupted ({err}); "
                "write it again"
            ) from err


def evaluate_2025(
    pairs: Iterable[tuple[str, str | Path, str | Path]], challenge: str
) -> list[dict[str, Any]]:
    """:func:`evaluate_2025_case` for every ``(case, prediction, truth)``, in order."""
    return [row for case, p, t in pairs for row in evaluate_2025_case(case, p, t, challenge)]

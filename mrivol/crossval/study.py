"""``mrivol study``: several networks cross-validated on the same folds, the best one picked.

Each network is one ``mrivol cv`` (:func:`mrivol.crossval.cross_validate`, continued when run
again) on the same manifest and folds, with the same epochs or the same wall time per fold
(``budget_minutes``). Then, as nnU-Net v2's ``find_best_configuration`` does
(``nnunetv2/evaluation/find_best_configuration.py``: every configuration's CV score, every
pairwise ensemble of their OOF probabilities, the best of all), the study scores on the OOF
predictions:

* every network alone (the score its post-processing search used: the mean over cases and
  regions of the lesion-wise Dice, or of the Dice without lesion-wise rules);
* every two-network ensemble: per case the mean of the two networks' OOF region
  probabilities, above 0.5;
* the choice: the best ensemble when it beats the best network, else the best network; an
  ensemble gets its own post-processing, searched on its OOF label maps.

Written to ``<runs>/<bundle>-study-<timestamp>/`` and logged to one MLflow run of the bundle's
experiment (tag ``mrivol.study``): ``study_table.csv`` (per network: mean ± std over cases per
region, fold spread, parameters, wall time), ``study_pairs.csv``, ``study_chart.png`` and
``study.json`` (the chosen configuration). Classification bundles rank by the OOF balanced
accuracy and ensemble the class probabilities.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mrivol.crossval.cross_validate import CvResult, cross_validate
from mrivol.crossval.oof import bundle_tasks, fold_record
from mrivol.crossval.pooling import manifest_labels, oof_cases
from mrivol.crossval.postprocessing_search import OofScorer, search_postprocessing
from mrivol.crossval.study_report import save_study_chart, study_table
from mrivol.inference.infer import common_setting
from mrivol.inference.postprocessing import Postprocessing, write_postprocessing
from mrivol.io import write_csv_atomic, write_text_atomic
from mrivol.metrics.classification import classification_report

__all__ = ["StudyResult", "format_study", "run_study"]

STUDY_TAG = "mrivol.study"


@dataclass
class StudyResult:
    """What a network study produced."""

    bundle: str
    nets: list[str]
    folds: list[int]
    run_id: str
    run_name: str
    output_dir: Path
    score_name: str
    scores: dict[str, float] = field(default_factory=dict)
    pairs: dict[str, float] = field(default_factory=dict)
    chosen: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)


def _oof_probs(cv: CvResult, case: str, regions: Sequence[str]) -> np.ndarray:
    return np.stack(
        [
            np.asarray(nib.load(cv.output_dir / "oof" / f"{case}_prob_{r}.nii.gz").dataobj)
            for r in regions
        ]
    )


def _pair_label_map(probs: np.ndarray, regions: Sequence[str], labels: str) -> np.ndarray:
    from mrivol.transforms import BratsRegionsToLabels

    order = [list(regions).index(r) for r in ("tc", "wt", "et")]
    return BratsRegionsToLabels(et_label=4 if labels == "brats2021" else 3)(probs[order] > 0.5)[0]


def _segmentation_scores(
    bundle: str, cvs: Mapping[str, CvResult], manifest: Path, folds: Sequence[int], out: Path
) -> tuple[str, dict[str, float], dict[str, float], dict[str, Any]]:
    """Scores of every network and pair on the OOF maps; the best pair's post-processing."""
    regions = [str(r).lower() for r in common_setting(bundle, "regions", ["tc", "wt", "et"])]
    labels = manifest_labels(bundle, manifest)
    cases = oof_cases(manifest, folds)
    scorers = {
        net: OofScorer(
            {c: (cv.output_dir / "oof" / f"{c}_seg.nii.gz", lab) for c, (_, lab) in cases.items()},
            labels=labels,
            challenge=common_setting(bundle, "lesionwise_rules"),
        )
        for net, cv in cvs.items()
    }
    scores = {net: s.score(Postprocessing()) for net, s in scorers.items()}
    pairs, pair_maps = {}, {}
    for a, b in itertools.combinations(cvs, 2):
        maps = {
            c: _pair_label_map(
                (_oof_probs(cvs[a], c, regions) + _oof_probs(cvs[b], c, regions)) / 2,
                regions,
                labels,
            )
            for c in cases
        }
        pairs[f"{a}+{b}"] = float(np.mean([scorers[a].case_score(c, m) for c, m in maps.items()]))
        pair_maps[f"{a}+{b}"] = maps
    extra: dict[str, Any] = {}
    if pairs:
        best = max(pairs, key=pairs.__getitem__)
        folder = out / "pairs" / best
        folder.mkdir(parents=True, exist_ok=True)
        for case, label_map in pair_maps[best].items():
            ref = nib.load(cvs[best.split("+")[0]].output_dir / "oof" / f"{case}_seg.nii.gz")
            image = nib.Nifti1Image(label_map.astype(np.uint8), ref.affine)
            nib.save(image, folder / f"{case}_seg.nii.gz")
        scorer = OofScorer(
            {c: (folder / f"{c}_seg.nii.gz", lab) for c, (_, lab) in cases.items()},
            labels=labels,
            challenge=common_setting(bundle, "lesionwise_rules"),
        )
        search = search_postprocessing(scorer, progress=False)
        path = out / f"postprocessing_{best}.json"
        write_postprocessing(search.rules, path, **search.to_json())
        extra = {"pair": best, "postprocessing": search.rules.to_dict(), "file": str(path)}
        extra["score_after_postprocessing"] = search.score_after
    return next(iter(scorers.values())).name, scores, pairs, extra


def _classification_scores(
    cvs: Mapping[str, CvResult], class_names: Sequence[str]
) -> tuple[str, dict[str, float], dict[str, float], dict[str, Any]]:
    """Balanced accuracy of every network and pair on the OOF class probabilities."""
    probs: dict[str, dict[str, np.ndarray]] = {}
    truth: dict[str, int] = {}
    for net, cv in cvs.items():
        probs[net] = {}
        for k in cv.folds:
            for row in (fold_record(cv.output_dir / "oof", k) or {}).get("classes", []):
                probs[net][row["case"]] = np.array([row[f"prob_{c}"] for c in class_names])
                truth[row["case"]] = int(row["label"])
    cases = sorted(set.intersection(*(set(p) for p in probs.values())))

    def balanced(p: Mapping[str, np.ndarray]) -> float:
        y_pred = [int(np.argmax(p[c])) for c in cases]
        report = classification_report(
            [truth[c] for c in cases], y_pred, num_classes=len(class_names)
        )
        return report.balanced_accuracy

    scores = {net: balanced(p) for net, p in probs.items()}
    pairs = {
        f"{a}+{b}": balanced({c: (probs[a][c] + probs[b][c]) / 2 for c in cases})
        for a, b in itertools.combinations(cvs, 2)
    }
    return "balanced_accuracy", scores, pairs, {}


def _study_run(bundle: str, key: str, params: Mapping[str, str], tracking_uri: str) -> tuple:
    import mlflow

    from mrivol.tracking.runs import ensure_experiment

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment_id = ensure_experiment(bundle, tracking_uri)
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{STUDY_TAG}` = '{key}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return client, found[0].info.run_id, found[0].info.run_name
    name = f"{bundle}-study-{time.strftime('%Y%m%d-%H%M%S')}"
    run = client.create_run(experiment_id, run_name=name, tags={STUDY_TAG: key})
    client.log_batch(
        run.info.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()]
    )
    return client, run.info.run_id, name


def run_study(
    *,
    bundle: str = "brats_seg",
    nets: Sequence[str],
    folds: Sequence[int] | None = None,
    epochs: int | None = None,
    data: str | Path | None = None,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    budget_minutes: float | None = None,
    postprocess: bool = True,
    tracking_uri: str | None = None,
) -> StudyResult:
    """Cross-validate every network of ``nets`` on the same folds; compare and choose.

    Raises:
        ValueError: fewer than one network, an unknown network (the message lists the bundle's),
            or the bundle's OOF predictions cannot be compared (a multi-task bundle).
    """
    from mrivol.paths import runs_dir
    from mrivol.tracking.runs import default_tracking_uri
    from mrivol.training.workflow import available_networks

    nets = list(dict.fromkeys(nets))
    known = available_networks(bundle)
    unknown = [n for n in nets if n not in known]
    if not nets or unknown:
        raise ValueError(
            f"--nets: {', '.join(unknown) or 'none given'}; bundle {bundle!r} has "
            f"{', '.join(known)}"
        )
    tasks = bundle_tasks(bundle)
    if not tasks["original_grid"] and tasks["regions"]:
        raise ValueError(
            f"mrivol study compares segmentations on the original grid, or classes; {bundle!r} "
            "segments on the network's grid (run mrivol cv per network and mrivol compare --cv)"
        )
    tracking_uri = tracking_uri or default_tracking_uri()
    cvs: dict[str, CvResult] = {}
    for i, net in enumerate(nets, start=1):
        print(f"=== network {net} ({i} of {len(nets)}) ===", flush=True)
        cvs[net] = cross_validate(
            bundle=bundle,
            net=net,
            folds=folds,
            epochs=epochs,
            data=data,
            profile=profile,
            overrides=overrides,
            tracking_uri=tracking_uri,
            budget_minutes=budget_minutes,
            postprocess=postprocess,
        )
    done = sorted(next(iter(cvs.values())).folds)
    manifest = Path(_parent_manifest(cvs[nets[0]]))
    key = hashlib.sha256(",".join(cvs[n].parent_run_id for n in nets).encode()).hexdigest()[:16]
    params = {"nets": ",".join(nets), "folds": ",".join(map(str, done)), "manifest": str(manifest)}
    params.update(epochs=str(epochs or "profile"), budget_minutes=str(budget_minutes or ""))
    client, run_id, run_name = _study_run(bundle, key, params, tracking_uri)
    out = runs_dir() / run_name
    out.mkdir(parents=True, exist_ok=True)
    if tasks["original_grid"]:
        name, scores, pairs, extra = _segmentation_scores(bundle, cvs, manifest, done, out)
    else:
        name, scores, pairs, extra = _classification_scores(cvs, tasks["class_names"])
    best = max(scores, key=scores.__getitem__)
    chosen: dict[str, Any] = {"networks": [best], "score": scores[best], "score_name": name}
    chosen["cv_parent_run_ids"] = [cvs[best].parent_run_id]
    if pairs and max(pairs.values()) > scores[best]:
        pair = max(pairs, key=pairs.__getitem__)
        chosen = {"networks": pair.split("+"), "score": pairs[pair], "score_name": name, **extra}
        chosen["cv_parent_run_ids"] = [cvs[n].parent_run_id for n in pair.split("+")]
    table = study_table(client, cvs, scores)
    summary = {"chosen": chosen, "scores": scores, "pairs": pairs}
    files = [
        write_csv_atomic(table, out / "study_table.csv"),
        write_csv_atomic([{"pair": p, name: v} for p, v in pairs.items()], out / "study_pairs.csv"),
        save_study_chart(table, out / "study_chart.png", score_name=name),
        write_text_atomic(json.dumps(summary, indent=2, default=float) + "\n", out / "study.json"),
    ]
    metrics = {f"study_{n}_{name}": v for n, v in scores.items()}
    metrics.update({f"study_pair_{p.replace('+', '_')}_{name}": v for p, v in pairs.items()})
    for metric, value in metrics.items():
        client.log_metric(run_id, metric, float(value))
    client.set_tag(run_id, "mrivol.study_chosen", "+".join(chosen["networks"]))
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status="FINISHED")
    return StudyResult(
        bundle, nets, done, run_id, run_name, out, name, scores, pairs, chosen, table
    )


def _parent_manifest(cv: CvResult) -> str:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=cv.tracking_uri)
    return client.get_run(cv.parent_run_id).data.params["manifest"]


def format_study(result: StudyResult) -> str:
    """The closing summary: the table, the pairs, the choice, where the files are."""
    from mrivol.crossval.study_report import format_study_table

    folds = ", ".join(map(str, result.folds))
    lines = [f"network study {result.run_name} (MLflow run {result.run_id}), folds {folds}"]
    lines.append(format_study_table(result.table))
    for pair, value in sorted(result.pairs.items(), key=lambda kv: -kv[1]):
        lines.append(f"  ensemble {pair}: {result.score_name} {value:.4f}")
    chosen = result.chosen
    lines.append(
        f"chosen: {' + '.join(chosen['networks'])} ({result.score_name} {chosen['score']:.4f} "
        f"on the OOF predictions); CV parent run(s) {', '.join(chosen['cv_parent_run_ids'])}"
    )
    lines.append(f"  outputs: {result.output_dir}")
    return "\n".join(lines)

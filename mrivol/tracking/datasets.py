"""The data a run trained on, as MLflow dataset inputs (the runs view's "Dataset" column).

A training run logs its manifest once per split with MLflow's own dataset API
(:func:`mlflow.data.from_pandas`, :meth:`mlflow.MlflowClient.log_inputs`): one dataset per
split, named ``<manifest>-fold<k>-train`` / ``-val``, with the context ``training`` /
``validation``, the manifest file as its source, one row per case (so the dataset's profile
holds the case count) and, as its digest, the manifest's content hash: two runs on the same
manifest show the same digest, whatever the path. MLflow keeps digests of at most 36
characters; the first :data:`DIGEST_CHARS` of the sha256 are used, the full hash is the run's
``manifest_hash`` param.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CONTEXTS", "DIGEST_CHARS", "dataset_name", "log_manifest_datasets", "split_frame"]

DIGEST_CHARS = 16
CONTEXTS = {"train": "training", "val": "validation"}  # split -> MLflow's input context tag


def dataset_name(manifest: str | Path, fold: int, split: str) -> str:
    """``<manifest stem>-fold<k>-<split>``.

    Examples:
        >>> dataset_name("/data/brats2021.csv", 0, "val")
        'brats2021-fold0-val'
    """
    return f"{Path(manifest).stem}-fold{fold}-{split}"


def split_frame(items: Sequence[Mapping[str, Any]]) -> Any:
    """A datalist as a DataFrame, one row per case; list values (modality paths) joined by ``;``."""
    import pandas as pd

    rows = [
        {k: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in item.items()}
        for item in items
    ]
    return pd.DataFrame(rows)


def log_manifest_datasets(
    client: Any,
    run_id: str,
    *,
    manifest: str | Path,
    fold: int,
    manifest_hash: str,
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
) -> list[Any]:
    """Log each split of ``manifest`` as a dataset input of ``run_id``.

    Args:
        client: an :class:`mlflow.MlflowClient`.
        run_id: the training run.
        manifest: the manifest file (the datasets' source).
        fold: the validation fold (part of the names).
        manifest_hash: sha256 of the manifest (its first :data:`DIGEST_CHARS` are the digest).
        splits: ``{"train": datalist, "val": datalist}`` as the run uses them.

    Returns:
        The logged :class:`mlflow.data.pandas_dataset.PandasDataset` objects.
    """
    import mlflow
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    source = str(Path(manifest).resolve())
    datasets, inputs = [], []
    for split, items in splits.items():
        dataset = mlflow.data.from_pandas(
            split_frame(items),
            source=source,
            name=dataset_name(manifest, fold, split),
            digest=manifest_hash[:DIGEST_CHARS],
        )
        context = CONTEXTS.get(split, split)
        tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)]
        inputs.append(DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags))
        datasets.append(dataset)
    client.log_inputs(run_id, datasets=inputs)
    return datasets

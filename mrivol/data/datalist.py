"""Datalists: a manifest's rows for one fold and split, as MONAI dictionaries, leakage-checked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mrivol.data.manifest import LAYOUTS, Layout, infer_layout, read_manifest
from mrivol.data.splits import DataLeakageError, check_split

__all__ = ["SPLITS", "to_datalist"]

SPLITS = ("train", "val", "all")


def _items(rows: pd.DataFrame, layout: Layout) -> list[dict]:
    items = []
    for rec in rows.to_dict("records"):
        item: dict = {"image": [str(rec[c]) for c in layout.images]}
        if layout.label:
            item["label"] = str(rec[layout.label])
        elif layout.target:
            value = str(rec[layout.target]).strip()
            item["label"] = layout.classes.index(value) if layout.classes else value
        item.update(case_id=str(rec["case_id"]), subject_id=str(rec["subject_id"]))
        for flag in layout.flags:
            item[flag] = bool(rec[flag])
        items.append(item)
    return items


def _frame(manifest: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, Layout, str]:
    df = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
    name = df.attrs.get("manifest", "<DataFrame>")
    layout = (
        LAYOUTS[df.attrs["layout"]]
        if "layout" in df.attrs
        else infer_layout(list(df.columns), name=name)
    )
    return df, layout, name


def to_datalist(
    manifest: str | Path | pd.DataFrame,
    *,
    fold: int,
    split: str,
    synthetic: str | Path | pd.DataFrame | None = None,
) -> list[dict]:
    """Turn a manifest into a MONAI datalist for one fold and split, refusing any leakage.

    Real scans: ``"train"`` holds the rows with ``fold != k``, ``"val"`` those with
    ``fold == k``. Synthetic rows (``synthetic`` column ``1``, e.g. DCGAN samples) carry in
    ``fold`` the fold *whose training set generated them*: they join the training split of that
    fold only, and never ``"val"`` or ``"all"``. Every call checks the split with
    :func:`mrivol.data.splits.check_split` (no subject in both training and validation, no
    synthetic validation item).

    Args:
        manifest: a manifest path, or a DataFrame returned by :func:`read_manifest`.
        fold: the validation fold ``k``.
        split: ``"train"`` (rows with ``fold != k``), ``"val"`` (``fold == k``) or ``"all"``
            (every real row).
        synthetic: an extra manifest of synthetic samples (all rows ``synthetic = 1``, same
            layout) to mix into the training split of fold ``k``; only with ``split="train"``.

    Returns:
        One dict per scan. ``brats2021``: ``{"image": [t1, t1ce, t2, flair], "label": seg,
        "case_id": ..., "subject_id": ...}`` with absolute ``str`` paths; ``image`` is stacked
        as channels ``(C, H, W, D)`` by MONAI's ``LoadImaged`` + ``EnsureChannelFirstd``.
        ``t1-table``: ``{"image": [t1], "label": class index (CN 0, MCI 1, AD 2), "case_id",
        "subject_id", "synthetic": bool}``.

    Raises:
        ValueError: naming the manifest, for an unknown split, a fold out of range or an
            empty split.
        DataLeakageError: synthetic samples asked for outside a training split, a ``synthetic``
            manifest holding real rows, a synthetic subject id equal to a real one, or a
            subject in two folds.
    """
    df, layout, name = _frame(manifest)
    if split not in SPLITS:
        raise ValueError(f"{name}: unknown split {split!r}; use one of {SPLITS}.")
    fake = (
        df["synthetic"].astype(bool)
        if "synthetic" in layout.flags
        else pd.Series(False, index=df.index)
    )
    real = df[~fake]
    n_folds = int(real["fold"].max()) + 1 if len(real) else 0
    if not 0 <= fold < n_folds:
        raise ValueError(
            f"{name}: fold {fold} out of range; this manifest has folds 0..{n_folds - 1}."
        )
    train = pd.concat([real[real["fold"] != fold], df[fake & (df["fold"] == fold)]])
    val = real[real["fold"] == fold]
    if synthetic is not None:
        if split != "train":
            raise DataLeakageError(
                f"{name}: synthetic samples requested for the {split!r} split of fold {fold}; "
                "they may only be mixed into a training split (split='train')."
            )
        extra, extra_layout, extra_name = _frame(synthetic)
        if extra_layout != layout or "synthetic" not in layout.flags:
            raise DataLeakageError(
                f"{extra_name}: layout {extra_layout.name!r} cannot be mixed into {name} "
                f"(layout {layout.name!r}, which needs a 'synthetic' column)."
            )
        if not extra["synthetic"].all():
            raise DataLeakageError(
                f"{extra_name}: {int((~extra['synthetic']).sum())} row(s) not marked "
                "synthetic = 1; a synthetic-sample manifest holds generated samples only."
            )
        clash = sorted(set(extra["subject_id"]) & set(df["subject_id"]))
        if clash:
            raise DataLeakageError(
                f"{extra_name}: synthetic subject id(s) {clash[:10]} also name subjects of "
                f"{name}; give generated samples their own subject ids."
            )
        train = pd.concat([train, extra[extra["fold"] == fold]])
    train_items, val_items = _items(train, layout), _items(val, layout)
    check_split(train_items, val_items, name=f"{name} fold {fold}")
    items = {"train": train_items, "val": val_items, "all": _items(real, layout)}[split]
    if not items:
        raise ValueError(
            f"{name}: split {split!r} of fold {fold} is empty; rebuild the manifest "
            "with more folds or subjects."
        )
    return items

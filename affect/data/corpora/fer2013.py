"""FER2013 (Goodfellow et al. 2013) as image folders (the Kaggle ``msambare/fer2013`` layout).

Not one of the paper's corpora: it is the one real basic-expression corpus the tests can read
(``../shared/data/fer2013``), used for EXPR learning checks and loader benchmarks.
Layout (``data_cards/fer2013.md``)::

    train/<class>/<name>.jpg    -> split "train"
    test/<class>/<name>.jpg     -> split "test"

48x48 greyscale JPEGs (``load_image`` converts them to RGB); classes angry, disgust, fear,
happy, neutral, sad, surprise (``labels.FER2013_FOLDERS``) -> canonical ``expr``.

- files in unknown class folders and non-image files are counted skips;
- other top-level folders are not read (the root may hold ``INDEX.csv`` and notes);
- no validation split and no subject ids: ``val_fraction`` holds out a seeded random part of
  ``train`` per image (FER2013's PublicTest / PrivateTest form the ``test`` folder);
- rows are in a *stratified* order, not class by class: each split's classes are interleaved in
  proportion to their sizes (:func:`stratified_order`), so any prefix of a split (what
  ``--trainer.limit_val_batches`` evaluates: loaders of evaluation splits do not shuffle) holds
  every class in its share of the split, instead of the first class only.

Only directory listings are read here (no decoding), so parsing 28k images takes well under
a second; a corrupt file surfaces as ``ImageReadError`` when the dataset loads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import LoadReport, manifest_from_records
from affect.labels import FER2013_FOLDERS, expr_index

CORPUS = "fer2013"
SPLIT_FOLDERS = {"train": "train", "test": "test"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def make_fer2013_manifest(root: str | Path) -> tuple[pd.DataFrame, LoadReport]:
    """List ``root/{train,test}/<class>/*`` into a manifest (``expr`` from the folder name).

    Raises:
        FileNotFoundError: neither ``root/train`` nor ``root/test`` exists.
    """
    root = Path(root)
    present = {s: f for s, f in SPLIT_FOLDERS.items() if (root / f).is_dir()}
    if not present:
        raise FileNotFoundError(
            f"no FER2013 split folder under {root}: expected {root / 'train'}/ and/or {root / 'test'}/"
            f" holding one folder per class ({', '.join(FER2013_FOLDERS)})"
        )
    report = LoadReport(CORPUS)
    records: list[dict] = []
    for split, folder in present.items():
        with os.scandir(root / folder) as entries:
            class_dirs = sorted(e.name for e in entries if e.is_dir())
        with os.scandir(root / folder) as entries:
            for e in entries:
                if e.is_file():
                    report.skip("file outside a class folder", example=f"{folder}/{e.name}")
        for name in class_dirs:
            with os.scandir(root / folder / name) as entries:
                files = sorted(e.name for e in entries if e.is_file())
            if name not in FER2013_FOLDERS:
                report.skip("unknown class folder", count=len(files), example=f"{folder}/{name}/")
                continue
            expr = expr_index(FER2013_FOLDERS[name])
            for file in files:
                if not file.lower().endswith(IMAGE_SUFFIXES):
                    report.skip("not an image file", example=f"{folder}/{name}/{file}")
                    continue
                records.append({"path": f"{folder}/{name}/{file}", "corpus": CORPUS, "split": split, "expr": expr})
    report.kept = len(records)
    records = [records[i] for i in stratified_order([(r["split"], r["expr"]) for r in records])]
    df = manifest_from_records(records)
    return df, report


def stratified_order(keys: list[tuple[str, int]]) -> list[int]:
    """Positions of ``keys`` (split, class) reordered so that each split's classes are interleaved evenly.

    Within a split, the i-th of the n items of a class gets the position (i + 0.5) / n; items are
    sorted by it (ties by class, then by original order). Any prefix of a split then holds each class
    in its share of the split, to within one item per class. Deterministic (no seed needed).

    >>> keys = [("train", 0)] * 4 + [("train", 1)] * 2 + [("test", 0)]
    >>> [keys[i] for i in stratified_order(keys)]
    [('train', 0), ('train', 1), ('train', 0), ('train', 0), ('train', 1), ('train', 0), ('test', 0)]
    """
    sizes: dict[tuple[str, int], int] = {}
    for k in keys:
        sizes[k] = sizes.get(k, 0) + 1
    seen: dict[tuple[str, int], int] = {}
    split_rank = {s: i for i, s in enumerate(dict.fromkeys(s for s, _ in keys))}
    sort_keys = []
    for pos, k in enumerate(keys):
        i = seen.get(k, 0)
        seen[k] = i + 1
        sort_keys.append((split_rank[k[0]], (i + 0.5) / sizes[k], k[1], pos))
    return [t[-1] for t in sorted(sort_keys)]


class Fer2013DataModule(CorpusDataModule):
    """FER2013 image folders (EXPR only).

    Args:
        root: the folder holding ``train/`` and/or ``test/``.
        **kwargs: :class:`~affect.data.datamodule.CorpusDataModule` arguments (``val_fraction``
            splits ``train`` per image, seeded by ``split_seed``).
    """

    corpus = CORPUS

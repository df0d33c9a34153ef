"""The thin ``LightningDataModule`` every corpus module builds on.

A corpus module (``affect/data/corpora/<slug>.py``) subclasses :class:`CorpusDataModule` and holds
its native-layout parser's arguments (:meth:`~CorpusDataModule.hold_parser_args`), which
:meth:`~CorpusDataModule.make_manifest` runs the parser with. Everything else —
optional task filtering, subject-independent validation splits, frame vs sequence samples,
the prepared store — is here, once.

Batch sizes are **per device** (under DDP each rank loads ``batch_size`` samples per step
from its own shard of the data, via Lightning's automatic ``DistributedSampler``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import lightning as L
import pandas as pd
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from affect.data.augment import AUGMENT_OPTIONS, AugmentingCollate, BatchAugment
from affect.data.batches import TASKS
from affect.data.datasets import FrameDataset, SequenceDataset
from affect.data.manifest import LoadReport, task_mask, validate_manifest
from affect.data.parser_args import ParserArgs
from affect.data.splits import subject_split
from affect.errors import ConfigError, MissingInputError

log = logging.getLogger(__name__)

DATA_ENV = "AFFECT_DATA"


def resolve_root(root: str) -> str:
    """Expand environment variables in a corpus root; an unset variable is a clear error.

    >>> import os; os.environ["AFFECT_DATA"] = "/corpora"
    >>> resolve_root("${AFFECT_DATA}/RAF-DB")
    '/corpora/RAF-DB'
    """
    expanded = os.path.expandvars(str(root))
    if "$" in expanded:
        raise ConfigError(
            f"corpus root {root!r} names an unset environment variable; set {DATA_ENV} to the folder "
            "that holds your corpora (see README, 'Where the corpora live')"
        )
    return expanded


def check_image_size(model: object, image_size: int) -> None:
    """Raise a :class:`ConfigError` naming both config keys if ``model`` (its ``hparams.image_size``) expects
    another input size than the data gives; a model without that hyper-parameter is not checked.

    Without this check the mismatch surfaces as "mat1 and mat2 shapes cannot be multiplied" deep in
    the network's first fully connected layer.
    """
    hparams = getattr(model, "hparams", None)
    want = hparams.get("image_size") if isinstance(hparams, Mapping) else None
    if want is not None and int(want) != int(image_size):
        raise ConfigError(
            f"the model takes {want}x{want} images (model.init_args.image_size) but the data gives "
            f"{image_size}x{image_size} (data.init_args.image_size); set both to the same value"
        )


class CorpusDataModule(ParserArgs, L.LightningDataModule):
    """Frames (or fixed-length sequences) of one corpus, split into train / val / test.

    Args:
        root: the corpus's release folder, in its native layout. Environment variables are
            expanded, so configs write ``${AFFECT_DATA}/Aff-Wild2``: ``AFFECT_DATA`` is the one
            place where corpus locations are set.
        batch_size: samples (or sequences) per device per step.
        num_workers: DataLoader worker processes.
        image_size: side of the square uint8 images handed to the model (paper: 96).
        task: keep only rows annotated for this task ("va" | "expr" | "au"); None keeps all.
        val_fraction: if > 0, hold out this fraction of the training rows, by subject, as the
            validation split (for corpora without an official one, or to keep the official
            validation set as a test set).
        split_seed: seed of the subject-independent split.
        transforms: an albumentations pipeline file (``albumentations.save``, YAML or JSON) applied to each
            training image of the image-folder path on the CPU (:mod:`affect.data.transforms`); not with ``store``.
        test_fraction: if > 0, first hold out this fraction of the training rows, by subject, as the
            test split (seed ``split_seed + 1``), for corpora that ship no test split (FER2013's public copy);
            an error when the corpus has test rows. ``val_fraction`` then splits the remaining training rows.
        sequence_length: if set, items are sequences of this many frames (video corpora only).
        sequence_stride: start-to-start distance of sequences (default: ``sequence_length``).
        augment: random horizontal flips and small translations of training batches
            (``affect.data.augment.BatchAugment``; the paper used no augmentation): ``true`` for
            its defaults, or a mapping of its options, e.g. ``{flip: 0.5, max_shift: 0.06, erase: 0.5}``.
        store: a folder written by ``affect prepare`` (environment variables expanded); if set, images come from its memory-mapped
            shards instead of JPEG/PNG decoding (whole batches are gathered in the main process:
            keep ``num_workers: 0`` there, since workers would pickle every batch across processes).
            The store's table replaces the parser's, so its split arguments (``fold``, ``subset``,
            ``layout``, ``camera``, ``threshold``, ...) must be this module's: a store records them
            (``affect prepare <corpus> --parser.<key> VALUE``) and a mismatch is an error naming the
            key (:meth:`check_store_parser_args`).
        test_split: the split ``affect test`` scores: ``"test"`` (a corpus without one is a one-line
            error) or ``"val"``, to score the validation split under ``test/*`` on purpose (logged).
    """

    corpus: str = ""

    def __init__(
        self,
        root: str,
        batch_size: int = 64,
        num_workers: int = 0,
        image_size: int = 96,
        task: str | None = None,
        val_fraction: float = 0.0,
        split_seed: int = 0,
        sequence_length: int | None = None,
        sequence_stride: int | None = None,
        store: str | None = None,
        augment: bool | dict[str, float] = False,
        test_fraction: float = 0.0,
        transforms: str | None = None,
        test_split: Literal["test", "val"] = "test",
    ) -> None:
        super().__init__()
        if task is not None and task not in TASKS:
            raise ConfigError(f"data.init_args.task must be one of {TASKS} or None, got {task!r}")
        for key, value, least in (("batch_size", batch_size, 1), ("image_size", image_size, 8),
                                  ("num_workers", num_workers, 0)):
            if not isinstance(value, int) or value < least:
                raise ConfigError(f"data.init_args.{key} must be an integer >= {least}; got {value!r}")
        self.root = resolve_root(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.task = task
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.sequence_length = sequence_length
        self.sequence_stride = sequence_stride
        self.store = resolve_root(store) if store is not None else None
        if isinstance(augment, dict):
            unknown = sorted(set(augment) - AUGMENT_OPTIONS)
            if unknown:
                raise ConfigError(
                    f"data.init_args.augment: unknown option(s) {unknown}; the options are {sorted(AUGMENT_OPTIONS)}"
                )
            try:
                BatchAugment(**augment, seed=0)  # a bad value fails here, at configuration time
            except (TypeError, ValueError) as err:
                raise ConfigError(f"data.init_args.augment: {err}") from None
        self.augment = augment
        if transforms is not None and self.store is not None:
            raise ConfigError(
                "data.init_args.transforms applies to images decoded from the corpus folders; a store is read in whole "
                "batches without decoding: use data.init_args.augment (on the device) with a store"
            )
        self.transforms = transforms
        if test_split not in ("test", "val"):
            raise ConfigError(f"data.init_args.test_split must be 'test' or 'val'; got {test_split!r}")
        self.test_split = test_split
        self.report: LoadReport | None = None
        self._manifest: pd.DataFrame | None = None
        self.datasets: dict[str, Dataset] = {}

    @property
    def manifest(self) -> pd.DataFrame:
        """The parsed, filtered and split manifest (parsed once, then cached); with ``store``, the
        store's table (``val_fraction`` re-draws a validation split from its training rows)."""
        if self._manifest is None and self.store is not None:
            from affect.store.reader import open_store

            opened = open_store(self.store)
            self.check_store_parser_args(opened.header.get("parser"))
            df = opened.manifest
            if self.task is not None:
                df = df[task_mask(df, self.task)]
            self._manifest = self._split(df.reset_index(drop=True))
        if self._manifest is None:
            if not Path(self.root).exists():
                raise MissingInputError(
                    f"{type(self).__name__}: corpus root {self.root} does not exist; fix data.init_args.root "
                    f"(or {DATA_ENV}, the folder that holds your corpora)"
                )
            df, report = self.make_manifest()
            df = validate_manifest(df)
            if self.task is not None:
                keep = task_mask(df, self.task)
                if (~keep).any():
                    report.skip(f"not annotated for task {self.task}", int((~keep).sum()))
                    report.kept -= int((~keep).sum())
                df = df[keep].reset_index(drop=True)
            df = self._split(df)
            report.log()
            self.report, self._manifest = report, df
        return self._manifest

    def _transforms(self, split: str, rows: pd.DataFrame):
        """The ``transforms`` pipeline for the training split (None otherwise); geometric transforms are refused
        for rows that carry landmarks (they would not move with the pixels)."""
        if self.transforms is None or split != "train":
            return None
        from affect.data.transforms import load_transforms

        pipeline = load_transforms(self.transforms)
        moving = pipeline.geometric()
        if moving and "landmarks" in rows.columns and rows["landmarks"].notna().any():
            raise ConfigError(
                f"data.init_args.transforms: {self.transforms} has geometric transforms {moving}, but this corpus's rows "
                "carry landmarks, which they would not move: use pixel-level transforms only"
            )
        return pipeline

    def _split(self, df: pd.DataFrame) -> pd.DataFrame:
        """``test_fraction`` then ``val_fraction`` of the training rows, by subject (seeded)."""
        if self.test_fraction > 0:
            if (df["split"] == "test").any():
                raise ConfigError(
                    f"{type(self).__name__}: data.init_args.test_fraction is {self.test_fraction}, but the corpus has "
                    f"its own test split ({int((df['split'] == 'test').sum())} rows); set test_fraction: 0"
                )
            df = subject_split(df, self.test_fraction, seed=self.split_seed + 1, to_split="test")
        return subject_split(df, self.val_fraction, seed=self.split_seed)

    def setup(self, stage: str | None = None) -> None:
        """Check that the model being trained takes the images this datamodule gives (``image_size``)."""
        model = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        check_image_size(model, self.image_size)
        if self.store is None and not getattr(self, "_framing_said", False):
            self._framing_said = True
            rank_zero_info(
                f"{type(self).__name__}: images are read from the corpus folders as given crops (a manifest box, else the "
                "whole image, resized; no detection or alignment): `affect prepare` + data.init_args.store gives the "
                "aligned crops that `affect predict` makes"
            )

    def dataset(self, split: str) -> Dataset:
        """The dataset of one split ("train" | "val" | "test"); empty splits raise."""
        if split not in self.datasets:
            if self.store is not None:
                self.datasets[split] = self._store_dataset(split)
            else:
                rows = self.manifest[self.manifest["split"] == split].reset_index(drop=True)
                if rows.empty:
                    have = sorted(self.manifest["split"].unique())
                    raise ConfigError(f"{type(self).__name__}: no {split!r} rows under {self.root} (splits: {have})")
                if self.sequence_length:
                    self.datasets[split] = SequenceDataset(
                        rows, self.root, self.sequence_length, self.sequence_stride, self.image_size
                    )
                else:
                    self.datasets[split] = FrameDataset(rows, self.root, self.image_size, self._transforms(split, rows))
        return self.datasets[split]

    def _store_dataset(self, split: str) -> Dataset:
        from affect.store import reader as store

        tasks = [self.task] if self.task else None
        if self.sequence_length:
            ds = store.StoreSequenceDataset(
                self.store, split, self.sequence_length, self.sequence_stride, tasks=tasks, table=self.manifest
            )
        else:
            ds = store.StoreFrameDataset(self.store, split, tasks=tasks, table=self.manifest)
        if ds.store.image_size != self.image_size:
            raise ConfigError(
                f"{type(self).__name__}: the store {self.store} holds {ds.store.image_size}x{ds.store.image_size} "
                f"crops but image_size is {self.image_size}; set image_size to match or re-run affect prepare "
                f"with --image-size {self.image_size}"
            )
        return ds

    def has_split(self, split: str) -> bool:
        rows = self.manifest["split"] == split
        if "status" in self.manifest.columns:  # a store: only faces that were found count
            rows &= self.manifest["status"] == "ok"
        return bool(rows.any())

    def collate_fn(self, split: str, collate: Callable | None = None):
        """The collate of ``split``'s loader: ``collate`` (default: the dataset's own, store: pass-through, or
        torch's default), followed by augmentation on the training split when ``augment`` is on."""
        collate = collate or getattr(self.dataset(split), "collate_fn", None)
        if split == "train" and self.augment:
            options = self.augment if isinstance(self.augment, dict) else {}
            return AugmentingCollate(collate, BatchAugment(**options, seed=self.split_seed))
        return collate

    def dataloader(self, split: str, batch_size: int | None = None, shuffle: bool | None = None) -> DataLoader:
        ds = self.dataset(split)
        return DataLoader(
            ds,
            batch_size=batch_size or self.batch_size,
            shuffle=(split == "train") if shuffle is None else shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate_fn(split),
            # a last training batch of 1 breaks batch-norm backbones; evaluation keeps every sample
            drop_last=split == "train" and len(ds) > (batch_size or self.batch_size),
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_source(self) -> str | None:
        """The split ``affect test`` scores: "test", "val" (``test_split: val``) or None (no test split)."""
        if self.test_split == "val":
            return "val"
        return "test" if self.has_split("test") else None

    def no_test_split_message(self, key: str = "data.init_args.test_split") -> str:
        m = self.manifest
        have = sorted(m.loc[m["status"] == "ok", "split"].unique() if "status" in m.columns else m["split"].unique())
        where = f"the store {self.store}" if self.store is not None else f"the corpus under {self.root}"
        return (f"{type(self).__name__}: {where} has no 'test' split (splits: {have}), so `affect test` has "
                f"nothing to score; set {key}: val to score the validation split as test/* on purpose, "
                "or test_fraction (e.g. 0.1) to hold out test subjects from train, or run `affect validate`")

    def test_dataloader(self) -> DataLoader:
        split = self.test_source()
        if split is None:
            raise ConfigError(self.no_test_split_message())
        if split == "val":
            log.warning("%s: scoring the 'val' split as test/* (data.init_args.test_split: val)", type(self).__name__)
        return self.dataloader(split)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

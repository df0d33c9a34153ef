"""``MultiDomainDataModule``: one VA, one AU and one EXPR batch per step (paper Sec. VI-B, Fig. 4).

FaceBehaviorNet is trained on three sets — images annotated for valence-arousal (VA-Set),
action units (AU-Set) or the 7 basic expressions (EXPR-Set) — and at every iteration one
batch of each is concatenated and fed to the network. The paper chose batch sizes 401 / 247 /
103 "so that after one epoch we have sampled all images in the sets"; ``batch_sizes="auto"``
derives sizes with that property from the actual set sizes (proportional to them, summing to
``total_batch_size``).

Each domain may combine several corpora (their datasets are concatenated by :class:`ConcatBatches`,
which gathers a batch from each member the member's own way, so store-backed corpora mix). Training uses
Lightning's ``CombinedLoader`` in ``max_size_cycle`` mode (an epoch ends when the longest
domain is exhausted; shorter ones restart), so ``batch`` in ``training_step`` is
``{"va": frame_batch, "au": frame_batch, "expr": frame_batch}``. Validation and testing use
``sequential`` mode: each domain is evaluated in full, separately (``dataloader_idx`` follows
``self.domains``). ``affect test`` scores each corpus's test split (or, with the corpus's
``test_split: val``, its validation split, logged); a corpus without either is left out with a
warning, and a domain left with no corpus is a one-line error naming the fix.

Each domain's batches carry **only that domain's targets** (:class:`DomainLabels`): the paper's
VA-Set, AU-Set and EXPR-Set hold images "annotated in terms of either valence-arousal, or action
units, or seven basic expressions", so a corpus listed under two domains (AffectNet under VA and
EXPR) feeds ``L_VA`` from the VA batch and ``L_Emo`` from the EXPR batch, never both from one.
``keep_other_labels=True`` keeps every label of every batch (a deviation from the paper: the
per-task batch sizes are then no longer 401 / 247 / 103 and such a corpus counts twice).

Batch sizes are **per device**. Under DDP Lightning gives every domain's loader its own
``DistributedSampler`` (it processes each loader of a ``CombinedLoader``), so ranks see
disjoint samples of every domain and the global batch is ``world_size`` times larger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset, default_collate

from affect.data.batches import LABELS, TASKS, unannotated
from affect.data.datamodule import CorpusDataModule
from affect.errors import ConfigError

log = logging.getLogger(__name__)

PAPER_BATCH_SIZES: dict[str, int] = {"va": 401, "au": 247, "expr": 103}


def auto_batch_sizes(set_sizes: dict[str, int], total_batch_size: int) -> dict[str, int]:
    """Batch sizes proportional to the set sizes, so every domain ends its epoch together.

    >>> auto_batch_sizes({"va": 4000, "au": 2470, "expr": 1030}, 750)
    {'va': 400, 'au': 247, 'expr': 103}
    """
    total = sum(set_sizes.values())
    if total == 0:
        raise ValueError("every domain is empty")
    return {d: max(1, round(total_batch_size * n / total)) for d, n in set_sizes.items()}


class DomainLabels:
    """A collate followed by masking every target that is not ``domain``'s (picklable).

    ``va`` domain: ``expr`` -> -1, ``au_mask`` -> False; ``au``: ``va_mask`` -> False, ``expr`` -> -1;
    ``expr``: ``va_mask`` / ``au_mask`` -> False. Masked values are zeroed (as the datasets give
    unannotated ones). Frame ``[B, ...]`` and sequence ``[B, T, ...]`` batches alike.
    """

    def __init__(self, collate: Callable | None, domain: str) -> None:
        if domain not in TASKS:
            raise ValueError(f"domain must be one of {TASKS}, got {domain!r}")
        self.collate = collate or default_collate
        self.domain = domain

    def __call__(self, items) -> dict:
        batch = dict(self.collate(items))
        for key in LABELS:  # fill values and masks from the one label table
            if key != self.domain and key in batch:
                batch.update(unannotated(key, tuple(batch[key].shape), batch[key]))
        return batch


class ConcatBatches(ConcatDataset):
    """A ``ConcatDataset`` that serves whole batches (``__getitems__``), like the store datasets do.

    Each member gives its share of a batch its own way (its ``__getitems__``, e.g. a store's single
    gather, or its items collated with torch's default collate); the shares are joined back in the
    order asked for (tensors concatenated, lists joined). Members must give the same batch keys.
    Use ``collate_fn`` (pass-through) as the loader's collate.
    """

    def __getitems__(self, indices: Sequence[int]) -> dict:
        idx = np.asarray(indices, dtype=np.int64)
        member = np.searchsorted(self.cumulative_sizes, idx, side="right")
        starts = [0, *self.cumulative_sizes[:-1]]
        shares, where = [], []
        for m in dict.fromkeys(member.tolist()):  # members in order of first appearance
            pos = np.flatnonzero(member == m)
            local = (idx[pos] - starts[m]).tolist()
            ds = self.datasets[m]
            shares.append(ds.__getitems__(local) if hasattr(ds, "__getitems__") else default_collate([ds[i] for i in local]))
            where.append(pos)
        if len(shares) == 1:
            return shares[0]
        keys = set(shares[0])
        if any(set(b) != keys for b in shares):
            raise ConfigError(
                f"the corpora of one domain give different batch keys ({[sorted(b) for b in shares]}); give them the "
                "same kind of data (all stores with or without audio, all frames or all sequences)")
        back = np.argsort(np.concatenate(where), kind="stable")  # concatenated position -> position asked for
        out = {}
        for key in shares[0]:
            parts = [b[key] for b in shares]
            if isinstance(parts[0], torch.Tensor):
                out[key] = torch.cat(parts)[torch.from_numpy(back)]
            else:
                joined = [v for p in parts for v in p]
                out[key] = [joined[i] for i in back]
        return out

    @staticmethod
    def collate_fn(batch: dict) -> dict:
        """Identity: ``__getitems__`` already returns the collated batch."""
        return batch


class MultiDomainDataModule(L.LightningDataModule):
    """Zips VA / AU / EXPR corpora into one multi-domain training stream.

    Args:
        va, au, expr: corpus datamodules per domain (any number, concatenated); a module whose
            ``task`` is unset is restricted to the domain's task, one with another task raises.
            At least one domain must be given.
        batch_sizes: "paper" (401 / 247 / 103), "auto" (proportional to the set sizes, summing to
            ``total_batch_size``), or "fixed" to use ``va_batch_size`` / ``au_batch_size`` /
            ``expr_batch_size``.
        num_workers: DataLoader workers per domain.
        image_size: the side of every corpus's images, stated once here (it replaces the corpora's
            own ``image_size``); ``None`` = the corpora's, which must then agree. The CLI links it to
            the model's ``image_size``.
        keep_other_labels: keep the labels of the other tasks in a domain's batches (default
            False: a domain's batch carries only its domain's targets, as in the paper; True is
            a deviation, see the module docstring).
    """

    def __init__(
        self,
        va: list[CorpusDataModule] | None = None,
        au: list[CorpusDataModule] | None = None,
        expr: list[CorpusDataModule] | None = None,
        batch_sizes: Literal["paper", "auto", "fixed"] = "paper",
        total_batch_size: int = 751,
        va_batch_size: int = 401,
        au_batch_size: int = 247,
        expr_batch_size: int = 103,
        num_workers: int = 0,
        image_size: int | None = None,
        keep_other_labels: bool = False,
    ) -> None:
        super().__init__()
        given = {"va": va or [], "au": au or [], "expr": expr or []}
        self.corpora = {d: mods for d, mods in given.items() if mods}
        if not self.corpora:
            raise ValueError("MultiDomainDataModule needs at least one of va, au, expr")
        for domain, mods in self.corpora.items():
            for dm in mods:
                if dm.task is None:
                    dm.task = domain
                elif dm.task != domain:
                    raise ValueError(f"{type(dm).__name__} has task={dm.task!r} but is listed under {domain!r}")
        self.domains: list[str] = [d for d in TASKS if d in self.corpora]
        self.batch_size_mode = batch_sizes
        self.total_batch_size = total_batch_size
        self.fixed_batch_sizes = {"va": va_batch_size, "au": au_batch_size, "expr": expr_batch_size}
        self.num_workers = num_workers
        self.keep_other_labels = keep_other_labels
        self._datasets: dict[tuple[str, str], Dataset] = {}
        self._sources: dict[tuple[str, str], list[tuple[CorpusDataModule, str]]] = {}
        modules = [dm for mods in self.corpora.values() for dm in mods]
        if image_size is not None:
            for dm in modules:
                dm.image_size = image_size
        sizes = sorted({dm.image_size for dm in modules})
        if len(sizes) > 1:
            raise ValueError(
                f"MultiDomainDataModule: the corpora deliver images of different sizes {sizes}; set "
                "data.init_args.image_size once for all of them"
            )
        #: The side of the images of every domain (what the model is built for).
        self.image_size: int = sizes[0]

    def sources(self, domain: str, split: str) -> list[tuple[CorpusDataModule, str]]:
        """The corpora of ``domain`` that serve ``split``, each with the split it serves from (for "test",
        :meth:`CorpusDataModule.test_source`); corpora lacking it are left out (for "test", with a warning)."""
        if (domain, split) not in self._sources:
            self._sources[(domain, split)] = self._find_sources(domain, split)
        return self._sources[(domain, split)]

    def _find_sources(self, domain: str, split: str) -> list[tuple[CorpusDataModule, str]]:
        if split != "test":
            found = [(dm, split) for dm in self.corpora[domain] if dm.has_split(split)]
            if not found:
                raise ConfigError(f"no corpus of domain {domain!r} has a {split!r} split")
            return found
        found = [(dm, dm.test_source()) for dm in self.corpora[domain]]
        for dm, source in found:
            if source is None:
                log.warning("domain %s: %s is left out of the test (it has no test split; test_split: val scores its "
                            "validation split)", domain, type(dm).__name__)
            elif source == "val":
                log.warning("domain %s: %s scores its 'val' split as test/* (test_split: val)", domain, type(dm).__name__)
        found = [(dm, source) for dm, source in found if source is not None]
        if not found:
            raise ConfigError(
                f"no corpus of domain {domain!r} has a test split, so `affect test` has nothing to score for it: "
                f"{self.corpora[domain][0].no_test_split_message(f'test_split in data.init_args.{domain}[*].init_args')}")
        return found

    def domain_dataset(self, domain: str, split: str) -> Dataset:
        """The concatenated ``split`` dataset of one domain (see :meth:`sources`)."""
        key = (domain, split)
        if key not in self._datasets:
            parts = [dm.dataset(source) for dm, source in self.sources(domain, split)]
            self._datasets[key] = parts[0] if len(parts) == 1 else (
                ConcatBatches(parts) if any(hasattr(p, "__getitems__") for p in parts) else ConcatDataset(parts))
        return self._datasets[key]

    @property
    def batch_sizes(self) -> dict[str, int]:
        """Per-device batch size of each domain."""
        if self.batch_size_mode == "paper":
            return {d: PAPER_BATCH_SIZES[d] for d in self.domains}
        if self.batch_size_mode == "fixed":
            return {d: self.fixed_batch_sizes[d] for d in self.domains}
        if self.batch_size_mode == "auto":
            sizes = {d: len(self.domain_dataset(d, "train")) for d in self.domains}
            return auto_batch_sizes(sizes, self.total_batch_size)
        raise ValueError(f"batch_sizes must be 'paper', 'auto' or 'fixed', got {self.batch_size_mode!r}")

    def steps_per_domain(self) -> dict[str, int]:
        """Batches per epoch of each domain's training loader (the epoch runs for the maximum).

        Training loaders drop a partial last batch (a batch of one breaks batch norm), so with
        ``"auto"`` sizes an epoch visits every image but for fewer than one batch per domain."""
        sizes = self.batch_sizes
        steps = {}
        for d in self.domains:
            n = len(self.domain_dataset(d, "train"))
            steps[d] = n // sizes[d] if n > sizes[d] else 1  # the training loaders drop a partial last batch
        return steps

    def _loader(self, domain: str, split: str, shuffle: bool) -> DataLoader:
        ds = self.domain_dataset(domain, split)
        first, source = self.sources(domain, split)[0]  # its collate (and augmentation)
        collate = first.collate_fn(source, collate=ds.collate_fn if isinstance(ds, ConcatBatches) else None)
        if not self.keep_other_labels:
            collate = DomainLabels(collate, domain)
        return DataLoader(
            ds,
            batch_size=self.batch_sizes[domain],
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate,
            drop_last=shuffle and len(ds) > self.batch_sizes[domain],  # training only (batch norm and size-1 batches)
        )

    def train_dataloader(self) -> CombinedLoader:
        steps = self.steps_per_domain()
        log.info("multi-domain epoch: batches per domain %s, batch sizes %s", steps, self.batch_sizes)
        return CombinedLoader({d: self._loader(d, "train", True) for d in self.domains}, mode="max_size_cycle")

    def _eval_loaders(self, split: str) -> CombinedLoader:
        # keyed by domain, so the model updates only the domain's task metrics (with keep_other_labels, an
        # AffectNet VA loader's EXPR labels still do not count towards EXPR); dataloader_idx follows self.domains
        return CombinedLoader({d: self._loader(d, split, False) for d in self.domains}, mode="sequential")

    def val_dataloader(self) -> CombinedLoader:
        return self._eval_loaders("val")

    def test_dataloader(self) -> CombinedLoader:
        return self._eval_loaders("test")

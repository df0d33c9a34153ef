"""``MultiDomainDataModule``: one VA, one AU and one EXPR batch per step (paper Sec. VI-B, Fig. 4).

FaceBehaviorNet is trained on three sets — images annotated for valence-arousal (VA-Set),
action units (AU-Set) or the 7 basic expressions (EXPR-Set) — and at every iteration one
batch of each is concatenated and fed to the network. The paper chose batch sizes 401 / 247 /
103 "so that after one epoch we have sampled all images in the sets"; ``batch_sizes="auto"``
derives sizes with that property from the actual set sizes (proportional to them, summing to
``total_batch_size``).

Each domain may combine several corpora (their datasets are concatenated). Training uses
Lightning's ``CombinedLoader`` in ``max_size_cycle`` mode (an epoch ends when the longest
domain is exhausted; shorter ones restart), so ``batch`` in ``training_step`` is
``{"va": frame_batch, "au": frame_batch, "expr": frame_batch}``. Validation and testing use
``sequential`` mode: each domain is evaluated in full, separately (``dataloader_idx`` follows
``self.domains``).

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
from collections.abc import Callable
from typing import Literal

import lightning as L
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset, default_collate

from affect.data.batches import LABELS, TASKS, unannotated
from affect.data.datamodule import CorpusDataModule

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

    def domain_dataset(self, domain: str, split: str) -> Dataset:
        """The concatenated ``split`` dataset of one domain (corpora lacking the split are left out)."""
        key = (domain, split)
        if key not in self._datasets:
            parts = [dm.dataset(split) for dm in self.corpora[domain] if dm.has_split(split)]
            if not parts:
                raise ValueError(f"no corpus of domain {domain!r} has a {split!r} split")
            self._datasets[key] = parts[0] if len(parts) == 1 else ConcatDataset(parts)
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
        first = next(dm for dm in self.corpora[domain] if dm.has_split(split))  # its collate (and augmentation)
        collate = first.collate_fn(split)
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
        has_test = all(any(dm.has_split("test") for dm in self.corpora[d]) for d in self.domains)
        return self._eval_loaders("test" if has_test else "val")

"""A tiny synthetic ``LightningDataModule`` of frame batches, for model and CLI tests.

Images are random uint8 ``[3, S, S]``; labels are deterministic functions of the images (so a model
can fit them): valence / arousal from the means of two image quadrants, EXPR the brightest of 7
horizontal bands, AU ``k`` active when band ``k mod 7`` of channel 1 is brighter than average.

``multi_domain=True`` splits the samples into three domains with one task annotated each (the
VA-, AU- and EXPR-Sets of FaceBehaviorNet, Sec. VI-B): ``train_dataloader`` returns
``{"va": ..., "au": ..., "expr": ...}`` (Lightning zips them, ``max_size_cycle``) and the
evaluation loaders return the same dict (iterated one after another, ``sequential``).

Importable by class path from a subprocess with ``PYTHONPATH=tests``:
``helpers.toy_datamodule.ToyDataModule``. Also two small test utilities shared by the model tests:
:func:`np_ccc` (an independent numpy CCC) and :func:`tiny_trainer`.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

DOMAINS = ("va", "au", "expr")


def np_ccc(x, y) -> float:
    """Eq. 1 with population moments, in numpy (an independent reference for the metric tests)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return float(2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))


def tiny_trainer(root, **kwargs) -> L.Trainer:
    """A quiet 1-CPU ``Trainer`` logging (CSV) under ``root``; ``kwargs`` override."""
    opts = {
        "accelerator": "cpu", "devices": 1, "default_root_dir": root, "enable_progress_bar": False,
        "enable_model_summary": False, "log_every_n_steps": 1, "num_sanity_val_steps": 0,
    }  # fmt: skip
    opts.update(kwargs)
    return L.Trainer(**opts)


def make_frames(
    n: int,
    image_size: int = 32,
    num_aus: int = 8,
    seed: int = 0,
    annotate: tuple[str, ...] = ("va", "expr", "au"),
) -> dict:
    """``n`` synthetic frames as one batch dict (the package's frame-batch convention)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (n, 3, image_size, image_size), generator=g, dtype=torch.uint8)
    x = image.float() / 255.0
    h = image_size // 2
    va = torch.stack([x[:, 0, :h, :h].mean((1, 2)), x[:, 2, h:, h:].mean((1, 2))], 1)
    va = ((va - 0.5) * 20).tanh()
    bands = torch.stack([b.mean((1, 2)) for b in x[:, 0].tensor_split(7, dim=1)], 1)  # [n, 7]
    expr = bands.argmax(1)
    bands1 = torch.stack([b.mean((1, 2)) for b in x[:, 1].tensor_split(7, dim=1)], 1)
    au = (bands1 > bands1.mean(1, keepdim=True)).float()[:, [k % 7 for k in range(num_aus)]]
    batch = {
        "image": image,
        "va": va if "va" in annotate else torch.zeros(n, 2),
        "va_mask": torch.full((n, 2), "va" in annotate),
        "expr": expr if "expr" in annotate else torch.full((n,), -1),
        "au": au if "au" in annotate else torch.zeros(n, num_aus),
        "au_mask": torch.full((n, num_aus), "au" in annotate),
        "corpus": ["toy"] * n,
        "video": [""] * n,
        "frame": torch.full((n,), -1),
    }
    return batch


class FrameDictDataset(Dataset):
    """Rows of a batch dict as samples (the default collate stacks them back)."""

    def __init__(self, batch: dict) -> None:
        self.batch = batch
        self.n = len(batch["image"])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.batch.items()}


class ToyDataModule(L.LightningDataModule):
    """Synthetic frames; see the module docstring.

    Args:
        num_train, num_val: samples per split (per domain when ``multi_domain``).
        batch_size: samples per loader per step.
        image_size: image side.
        num_aus: AU vector length (must match the model's AU set).
        multi_domain: one loader per task domain (dicts of loaders) instead of one loader.
        seed: data seed (the validation split uses ``seed + 1``).
    """

    def __init__(
        self,
        num_train: int = 32,
        num_val: int = 16,
        batch_size: int = 8,
        image_size: int = 32,
        num_aus: int = 8,
        multi_domain: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.image_size = image_size  # linked into the model's image_size by the affect CLI

    def _data(self, n: int, seed: int, annotate: tuple[str, ...]) -> FrameDictDataset:
        hp = self.hparams
        return FrameDictDataset(make_frames(n, hp.image_size, hp.num_aus, seed, annotate))

    def _loaders(self, n: int, seed: int, shuffle: bool):
        hp = self.hparams
        if not hp.multi_domain:
            return DataLoader(
                self._data(n, seed, ("va", "expr", "au")), batch_size=hp.batch_size, shuffle=shuffle
            )
        return {
            d: DataLoader(self._data(n, seed * 10 + i, (d,)), batch_size=hp.batch_size, shuffle=shuffle)
            for i, d in enumerate(DOMAINS)
        }

    def train_dataloader(self):
        return self._loaders(self.hparams.num_train, self.hparams.seed, shuffle=True)

    def val_dataloader(self):
        return self._loaders(self.hparams.num_val, self.hparams.seed + 1, shuffle=False)

    def test_dataloader(self):
        return self.val_dataloader()

    def predict_dataloader(self):
        return DataLoader(
            self._data(self.hparams.num_val, self.hparams.seed + 1, ()), batch_size=self.hparams.batch_size
        )

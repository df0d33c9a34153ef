"""Training-time augmentation on uint8 batches (an option; the paper used none, Sec. IV).

``BatchAugment`` works on a collated batch dict, so the same code serves the JPEG/PNG datasets
(applied in the DataLoader's collate, inside the workers) and the prepared store (whole-batch
gathers): random horizontal flips — with the 68 landmarks mirrored and re-indexed — random
rotations and scalings about the centre (off by default; landmarks moved with the pixels), random
translations with edge padding, and random erasing of a square patch ("cutout", DeVries & Taylor
2017; off by default). Labels are unchanged (VA, EXPR and AU occurrence are taken as left-right
symmetric; an erased patch hides part of the face, as occlusions in-the-wild do).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import default_collate

# iBUG 68-point index of each point's mirror image (jaw, brows, nose, eyes, mouth).
MIRROR_68: tuple[int, ...] = (
    *range(16, -1, -1),  # jaw 0..16
    *range(26, 16, -1),  # brows 17..26
    27, 28, 29, 30,  # nose bridge
    35, 34, 33, 32, 31,  # nostrils
    45, 44, 43, 42, 47, 46,  # right eye <- left eye
    39, 38, 37, 36, 41, 40,  # left eye <- right eye
    54, 53, 52, 51, 50, 49, 48,  # outer upper lip
    59, 58, 57, 56, 55,  # outer lower lip
    64, 63, 62, 61, 60,  # inner upper lip
    67, 66, 65,  # inner lower lip
)


class BatchAugment:
    """Random horizontal flip (probability ``flip``), rotation (uniform in +-``max_rotate`` degrees)
    and scaling (uniform in ``1 +- max_scale``) about the image centre, translation (up to
    ``max_shift`` of the side) and erasing (probability ``erase``: a grey square of side ``erase_size`` x the image side, at a
    uniformly random centre, clipped at the borders).

    In DataLoader workers each worker draws its own stream (the seed is mixed with the worker id on
    the first call), so two workers never apply the same augmentations to their batches.

    >>> aug = BatchAugment(flip=1.0, max_shift=0.0, seed=0)
    >>> batch = {"image": torch.arange(4, dtype=torch.uint8).reshape(1, 1, 1, 4).expand(1, 3, 1, 4).clone()}
    >>> aug(batch)["image"][0, 0, 0].tolist()
    [3, 2, 1, 0]
    """

    #: the value erased pixels get (mid-grey: 0 after the [-1, 1] normalisation)
    ERASE_VALUE = 128

    def __init__(
        self,
        flip: float = 0.5,
        max_shift: float = 0.06,
        erase: float = 0.0,
        erase_size: float = 0.4,
        max_rotate: float = 0.0,
        max_scale: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= flip <= 1.0 or not 0.0 <= max_shift < 0.5:
            raise ValueError(f"flip must be in [0, 1] and max_shift in [0, 0.5), got {flip}, {max_shift}")
        if not 0.0 <= max_rotate <= 180.0 or not 0.0 <= max_scale < 1.0:
            raise ValueError(f"max_rotate must be in [0, 180] degrees and max_scale in [0, 1), got {max_rotate}, {max_scale}")
        if not 0.0 <= erase <= 1.0 or not 0.0 < erase_size <= 1.0:
            raise ValueError(f"erase must be in [0, 1] and erase_size in (0, 1], got {erase}, {erase_size}")
        self.flip, self.max_shift = flip, max_shift
        self.erase, self.erase_size = erase, erase_size
        self.max_rotate, self.max_scale = max_rotate, max_scale
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**63)
        self.generator = torch.Generator()
        self.generator.manual_seed(self.seed)
        self._worker_seeded = False

    def _seed_for_worker(self) -> None:
        if self._worker_seeded:
            return
        self._worker_seeded = True
        info = torch.utils.data.get_worker_info()
        if info is not None:
            self.generator.manual_seed(self.seed * 1009 + 1 + info.id)

    def __call__(self, batch: dict) -> dict:
        self._seed_for_worker()
        images = batch["image"]
        if images.ndim != 4:  # sequences: augment consistently per sequence is not implemented
            raise ValueError(f"BatchAugment works on frame batches [B, 3, H, W], got {tuple(images.shape)}")
        n, _, h, w = images.shape
        images = images.clone()
        landmarks = batch.get("landmarks")
        landmarks = landmarks.clone() if landmarks is not None else None
        flip = torch.rand(n, generator=self.generator) < self.flip
        if flip.any():
            images[flip] = images[flip].flip(-1)
            if landmarks is not None:
                mirrored = landmarks[flip][:, list(MIRROR_68)]
                mirrored[..., 0] = 1.0 - mirrored[..., 0]
                landmarks[flip] = mirrored
        if self.max_rotate > 0 or self.max_scale > 0:
            images, landmarks = self._rotate_scale(images, landmarks)
        if self.max_shift > 0:
            limit = max(1, round(self.max_shift * min(h, w)))
            shifts = torch.randint(-limit, limit + 1, (n, 2), generator=self.generator)
            pad = torch.nn.functional.pad(images.float(), (limit, limit, limit, limit), mode="replicate").to(images.dtype)
            # one gather for the whole batch: output pixel (y, x) of sample i reads pad[y - dy_i, x - dx_i]
            rows = torch.arange(h)[None, :] + limit - shifts[:, :1]  # [n, h]
            cols = torch.arange(w)[None, :] + limit - shifts[:, 1:]  # [n, w]
            index = torch.arange(n)[:, None, None, None], torch.arange(images.shape[1])[None, :, None, None]
            images = pad[index[0], index[1], rows[:, None, :, None], cols[:, None, None, :]]
            if landmarks is not None:
                landmarks += torch.stack([shifts[:, 1] / w, shifts[:, 0] / h], dim=1)[:, None, :].to(landmarks.dtype)
        if self.erase > 0:
            images = self._erase(images)
        out = dict(batch)
        out["image"] = images
        if landmarks is not None:
            out["landmarks"] = landmarks
        return out

    def _rotate_scale(self, images: torch.Tensor, landmarks: torch.Tensor | None):
        """Rotate by ``a`` and scale by ``s`` about the centre, bilinear, borders replicated (one
        ``affine_grid`` + ``grid_sample`` for the batch). Output pixel ``p`` (pixel units from the
        centre) reads input ``R(-a) p / s``; landmarks ``q`` (in [0, 1]) move to ``s R(a) q``."""
        n, _, h, w = images.shape
        angle = (torch.rand(n, generator=self.generator) * 2 - 1) * self.max_rotate * torch.pi / 180
        scale = 1 + (torch.rand(n, generator=self.generator) * 2 - 1) * self.max_scale
        cos, sin = torch.cos(angle), torch.sin(angle)
        # in affine_grid's normalised coordinates x_n = x / (w / 2), y_n = y / (h / 2)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos / scale, sin / scale * h / w
        theta[:, 1, 0], theta[:, 1, 1] = -sin / scale * w / h, cos / scale
        grid = torch.nn.functional.affine_grid(theta, (n, images.shape[1], h, w), align_corners=False)
        out = torch.nn.functional.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border",
                                              align_corners=False)  # fmt: skip
        out = out.round_().clamp_(0, 255).to(images.dtype)
        if landmarks is not None:
            px = (landmarks[..., 0] - 0.5) * w  # pixel units from the centre
            py = (landmarks[..., 1] - 0.5) * h
            c, s_, k = cos[:, None], sin[:, None], scale[:, None]
            moved = torch.stack([k * (c * px - s_ * py) / w + 0.5, k * (s_ * px + c * py) / h + 0.5], dim=-1)
            landmarks = moved.to(landmarks.dtype)
        return out, landmarks

    def _erase(self, images: torch.Tensor) -> torch.Tensor:
        """Grey out one square per chosen image (a [n, h, w] mask built from two range comparisons)."""
        n, _, h, w = images.shape
        chosen = torch.rand(n, generator=self.generator) < self.erase
        half_h, half_w = self.erase_size * h / 2, self.erase_size * w / 2
        cy = torch.rand(n, generator=self.generator) * h
        cx = torch.rand(n, generator=self.generator) * w
        ys = torch.arange(h) + 0.5
        xs = torch.arange(w) + 0.5
        in_rows = (ys[None, :] - cy[:, None]).abs() < half_h  # [n, h]
        in_cols = (xs[None, :] - cx[:, None]).abs() < half_w  # [n, w]
        mask = chosen[:, None, None] & in_rows[:, :, None] & in_cols[:, None, :]
        return images.masked_fill(mask[:, None], self.ERASE_VALUE)


#: The options of :class:`BatchAugment` a datamodule's ``augment`` mapping may set (its arguments but the seed).
AUGMENT_OPTIONS = frozenset(inspect.signature(BatchAugment).parameters) - {"seed"}


class AugmentingCollate:
    """``collate`` (default: torch's) followed by ``augment`` on the collated batch (picklable)."""

    def __init__(self, collate: Callable | None, augment: BatchAugment) -> None:
        self.collate = collate or default_collate
        self.augment = augment

    def __call__(self, items):
        return self.augment(self.collate(items))

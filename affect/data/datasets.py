"""Datasets over a manifest (``affect.data.manifest``) that read images from disk.

For large corpora, ``affect prepare`` writes a memory-mapped store that
``affect.store.reader`` reads without decoding; these datasets are the JPEG/PNG path for
small corpora and for the tests.

A frame item is a dict (see ``FrameItem``); images are **uint8** ``[3, H, W]`` so that the
loader moves bytes and the model normalises on the device (``x / 127.5 - 1``, paper Sec. IV).
If the manifest has a face box (``box_x, box_y, box_w, box_h``), the box is cropped before the
resize; ``landmarks`` are mapped into the output crop and normalised to ``[0, 1]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from affect.data.manifest import AU_COLUMNS
from affect.data.windows import window_starts
from affect.io import MediaReadError, open_image

__all__ = ["FrameDataset", "FrameItem", "ImageReadError", "SequenceDataset", "load_image", "sequence_windows"]

NUM_LANDMARKS = 68


class FrameItem(TypedDict):
    """One sample. Batched by the default collate into ``[B, ...]`` tensors / lists of str."""

    image: torch.Tensor  # uint8 [3, H, W]
    va: torch.Tensor  # float32 [2] (valence, arousal); 0 where masked
    va_mask: torch.Tensor  # bool [2]
    expr: torch.Tensor  # int64 [], -1 = no label
    au: torch.Tensor  # float32 [A]; 0 where masked
    au_mask: torch.Tensor  # bool [A] (eq. 7's delta)
    landmarks: torch.Tensor  # float32 [68, 2] in [0, 1] of the crop; 0 where absent
    landmarks_mask: torch.Tensor  # bool []
    compound: torch.Tensor  # int64 [], -1 = none
    corpus: str
    video: str
    frame: torch.Tensor  # int64 []


#: Decode an image file to 8-bit RGB (Pillow) as displayed: the one reader, :func:`affect.io.open_image`.
load_image = open_image
#: What a missing or undecodable image raises (the name the corpus tests and data cards use).
ImageReadError = MediaReadError


class ManifestLabels:
    """Manifest label columns as contiguous arrays, indexed once per item (no pandas per item)."""

    def __init__(self, manifest: pd.DataFrame) -> None:
        va = manifest[["valence", "arousal"]].to_numpy(np.float32)
        au = manifest[list(AU_COLUMNS)].to_numpy(np.float32)
        self.va_mask = np.isfinite(va)
        self.va = np.nan_to_num(va, nan=0.0)
        self.au_mask = np.isfinite(au)
        self.au = np.nan_to_num(au, nan=0.0)
        self.expr = manifest["expr"].to_numpy(np.int64)
        self.compound = manifest["compound"].to_numpy(np.int64)
        self.frame = manifest["frame"].to_numpy(np.int64)
        self.corpus = manifest["corpus"].to_numpy(str)
        self.video = manifest["video"].to_numpy(str)
        self.landmarks = np.zeros((len(manifest), NUM_LANDMARKS, 2), np.float32)
        self.landmarks_mask = np.zeros(len(manifest), bool)
        if "landmarks" in manifest.columns:
            for i, lm in enumerate(manifest["landmarks"].to_numpy()):
                if lm is not None and not (isinstance(lm, float) and np.isnan(lm)):
                    self.landmarks[i] = np.asarray(lm, np.float32).reshape(NUM_LANDMARKS, 2)
                    self.landmarks_mask[i] = True
        box_cols = ["box_x", "box_y", "box_w", "box_h"]
        if all(c in manifest.columns for c in box_cols):
            self.box = manifest[box_cols].to_numpy(np.float32)
        else:
            self.box = np.full((len(manifest), 4), np.nan, np.float32)


class FrameDataset(Dataset):
    """Frames or still images listed in a manifest, decoded with PIL and resized to ``image_size``."""

    def __init__(self, manifest: pd.DataFrame, root: str | Path = "", image_size: int = 96, transforms=None) -> None:
        """``transforms``: an optional :class:`affect.data.transforms.ImageTransforms` applied to each image."""
        self.manifest = manifest.reset_index(drop=True)
        self.root = Path(root)
        self.image_size = image_size
        self.transforms = transforms
        self.paths = [str(self.root / p) for p in self.manifest["path"]]
        self.labels = ManifestLabels(self.manifest)

    def __len__(self) -> int:
        return len(self.manifest)

    def _image_and_landmarks(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        img = load_image(self.paths[i])
        lab = self.labels
        landmarks = lab.landmarks[i].copy()
        left, top, width, height = 0.0, 0.0, float(img.width), float(img.height)
        if np.all(np.isfinite(lab.box[i])):
            left, top, width, height = (float(v) for v in lab.box[i])
            img = img.crop((round(left), round(top), round(left + width), round(top + height)))
        if img.size != (self.image_size, self.image_size):
            img = img.resize((self.image_size, self.image_size), Image.BILINEAR)
        if lab.landmarks_mask[i]:
            landmarks = (landmarks - np.array([left, top], np.float32)) / np.array([width, height], np.float32)
        array = np.asarray(img, dtype=np.uint8)
        if self.transforms is not None:
            array = self.transforms(array)
        return torch.from_numpy(array.copy()).permute(2, 0, 1), landmarks

    def __getitem__(self, i: int) -> FrameItem:
        image, landmarks = self._image_and_landmarks(i)
        lab = self.labels
        return FrameItem(
            image=image,
            va=torch.from_numpy(lab.va[i]),
            va_mask=torch.from_numpy(lab.va_mask[i]),
            expr=torch.tensor(lab.expr[i]),
            au=torch.from_numpy(lab.au[i]),
            au_mask=torch.from_numpy(lab.au_mask[i]),
            landmarks=torch.from_numpy(landmarks),
            landmarks_mask=torch.tensor(bool(lab.landmarks_mask[i])),
            compound=torch.tensor(lab.compound[i]),
            corpus=str(lab.corpus[i]),
            video=str(lab.video[i]),
            frame=torch.tensor(lab.frame[i]),
        )


def sequence_windows(manifest: pd.DataFrame, length: int, stride: int | None = None) -> list[np.ndarray]:
    """Row indices of fixed-length windows over each video, in frame order.

    The one windowing rule (:func:`affect.data.windows.window_starts`): windows start every ``stride``
    frames (default ``length``: non-overlapping); the last window of a video is shortened (and padded by
    the dataset) so that every frame is covered, once.

    >>> df = pd.DataFrame({"corpus": "c", "video": ["a"] * 5 + ["b"] * 2, "frame": [3, 1, 2, 5, 4, 1, 2]})
    >>> [w.tolist() for w in sequence_windows(df, length=2)]
    [[1, 2], [0, 4], [3], [5, 6]]
    """
    windows: list[np.ndarray] = []
    still = manifest["frame"].to_numpy() < 0
    if still.any():
        raise ValueError(f"sequences need video frames; {int(still.sum())} rows are still images (frame -1)")
    for _, group in manifest.groupby(["corpus", "video"], sort=True):
        rows = group.sort_values("frame").index.to_numpy()
        windows.extend(rows[s : s + length] for s in window_starts(len(rows), length, stride))
    return windows


class SequenceDataset(Dataset):
    """Fixed-length frame sequences (paper: 80 for AffWildNet / CNN-RNN, 90 for MT-VGG-GRU).

    Items stack ``FrameItem`` fields along a time axis ``[T, ...]`` and add ``frame_mask``
    (False on padding, which repeats the last real frame).
    """

    def __init__(
        self,
        manifest: pd.DataFrame,
        root: str | Path = "",
        length: int = 80,
        stride: int | None = None,
        image_size: int = 96,
    ) -> None:
        self.frames = FrameDataset(manifest, root, image_size)
        self.length = length
        self.windows = sequence_windows(self.frames.manifest, length, stride)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        rows = self.windows[i]
        items = [self.frames[int(r)] for r in rows]
        pad = self.length - len(items)
        items += [items[-1]] * pad
        out: dict = {}
        for key, value in items[0].items():
            values = [it[key] for it in items]
            out[key] = torch.stack(values) if isinstance(value, torch.Tensor) else value
        out["frame_mask"] = torch.arange(self.length) < len(rows)
        return out

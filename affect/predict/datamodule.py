"""``MediaDataModule``: a user's photos / videos as prediction batches of aligned faces.

``affect predict --config experiments/predict/media.yaml --ckpt_path <ckpt> --data.init_args.inputs <file|folder|glob>``

In ``setup("predict")`` the inputs go through :class:`affect.predict.media.FaceExtractor` (MTCNN on
the model's device, 5-point alignment, IoU tracks; a progress bar over frames), which gives one row
per face and frame (and one per frame without a face) and the aligned crops. The crop size comes
from the checkpoint's ``"affect"`` entry (``image_size``), falling back to the module's
hyper-parameters, then to ``image_size`` here.

Batches: frame models get ``image`` uint8 ``[N, 3, S, S]``, ``landmarks`` ``[N, 68, 2]`` (zeros,
``landmarks_mask`` False: MTCNN gives 5 points, not 68) and ``row`` ``[N]`` (the face's row in
:attr:`MediaDataModule.table`, read back by :class:`affect.predict.writer.MediaPredictionWriter`
from the batch). Sequence models (AffWildNet, CNN-RNNs, MT-VGG-GRU) get each track cut into
windows of ``sequence_length`` consecutive faces: ``image`` ``[B, T, 3, S, S]``, ``frame_mask``
``[B, T]`` (False on padding), ``row`` ``[B, T]`` (-1 on padding); a still image's face is a
one-frame sequence.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from affect.predict.media import FaceExtractor, FaceOptions, FaceTable, expand_inputs

__all__ = ["SEQUENCE_MODULES", "MediaDataModule", "model_spaces"]

#: LightningModule classes (and their subclasses) that take ``[B, T, 3, H, W]`` sequences.
SEQUENCE_MODULES = ("AffWildNetModule", "CNNRNNModule", "ModelLevelFusionModule", "MTVGGGRUModule", "AVMTVGGGRUModule")
#: The paper's sequence lengths are 80 (AffWildNet / CNN-RNN) and 90 (MT-VGG-GRU); 80 when not given.
DEFAULT_SEQUENCE_LENGTH = 80
NUM_LANDMARKS = 68


def model_spaces(trainer: L.Trainer | None, module: L.LightningModule | None) -> dict:
    """What predicting needs from the model: ``image_size``, ``tasks``, ``au_set``, ``expr_classes``,
    ``compound_classes`` — from the checkpoint's ``"affect"`` entry (``trainer.ckpt_path``), else from
    the module (``label_spaces()`` / hyper-parameters)."""
    spaces: dict = {}
    ckpt_path = getattr(trainer, "ckpt_path", None) if trainer is not None else None
    if ckpt_path:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
        spaces.update(ckpt.get("affect") or {})
    if module is not None:
        if hasattr(module, "label_spaces"):
            for k, v in module.label_spaces().items():
                spaces.setdefault(k, v)
        hp = getattr(module, "hparams", {})
        for k in ("image_size", "tasks", "au_set"):
            if k in hp:
                spaces.setdefault(k, hp[k])
        names = getattr(module, "class_names", None)
        if names is not None:
            spaces.setdefault("compound_classes", list(names))
    return spaces


def is_sequence_module(module: object) -> bool:
    return any(c.__name__ in SEQUENCE_MODULES for c in type(module).__mro__)


class _Faces(Dataset):
    """One item per face row."""

    def __init__(self, crops: np.ndarray, rows: np.ndarray, crop_of: np.ndarray) -> None:
        self.crops, self.rows, self.crop_of = crops, rows, crop_of

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return _item(self.crops, [int(self.rows[i])], self.crop_of)


def _item(crops: np.ndarray, rows: list[int], crop_of: np.ndarray) -> dict:
    """Batch keys for one face (``len(rows) == 1``: no time axis) or a window of faces."""
    image = torch.from_numpy(np.ascontiguousarray(crops[crop_of[rows]])).permute(0, 3, 1, 2)
    n = len(rows)
    return {
        "image": image[0] if n == 1 else image,
        "landmarks": torch.zeros((NUM_LANDMARKS, 2) if n == 1 else (n, NUM_LANDMARKS, 2)),
        "landmarks_mask": torch.zeros(() if n == 1 else (n,), dtype=torch.bool),
        "row": torch.tensor(rows[0] if n == 1 else rows, dtype=torch.int64),
    }


class _Windows(Dataset):
    """Track windows of ``length`` faces, padded by repeating the last face (masked)."""

    def __init__(self, crops: np.ndarray, windows: list[list[int]], length: int, crop_of: np.ndarray) -> None:
        self.crops, self.windows, self.length, self.crop_of = crops, windows, length, crop_of

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        rows = self.windows[i]
        pad = self.length - len(rows)
        item = _item(self.crops, rows + [rows[-1]] * pad, self.crop_of)
        if self.length == 1:  # keep the time axis
            item = {k: v.unsqueeze(0) for k, v in item.items()}
        item["row"] = torch.tensor(rows + [-1] * pad, dtype=torch.int64)
        item["frame_mask"] = torch.arange(self.length) < len(rows)
        return item


def track_windows(rows: list[Mapping], length: int) -> list[list[int]]:
    """Row indices of consecutive windows of at most ``length`` faces along each (input, face_id) track.

    >>> rows = [{"input": "v", "face_id": f, "frame": k, "crop": 0} for k in range(3) for f in (0, 1)]
    >>> track_windows(rows, 2)
    [[0, 2], [4], [1, 3], [5]]
    """
    tracks: dict[tuple[str, int], list[int]] = {}
    for i, r in enumerate(rows):
        if r["crop"] >= 0:
            tracks.setdefault((r["input"], r["face_id"]), []).append(i)
    out = []
    for idx in tracks.values():
        idx = sorted(idx, key=lambda i: rows[i]["frame"])
        out.extend(idx[s : s + length] for s in range(0, len(idx), length))
    return out


class MediaDataModule(L.LightningDataModule):
    """Photos and videos -> batches of aligned faces for ``affect predict`` (see the module docstring).

    Args:
        inputs: files, folders (recursive) or globs; images and videos may be mixed.
        select: faces kept per frame: ``"all"``, ``"largest"`` or ``"central"``.
        frame_stride: keep every k-th video frame.
        detect_every: run MTCNN on every k-th kept frame; the tracked faces' boxes and 5 points are
            carried in between (``carried = 1`` in the CSV).
        min_face_size: smallest face side (px) MTCNN searches for; also the smallest usable image side.
        min_face_fraction: smallest face side as a fraction of the frame's short side (0 = off);
            larger values skip MTCNN's finest pyramid levels (faster, misses small faces).
        detect_max_side: frames / images whose long side is larger are detected on a downscaled copy.
        detect_batch_size: frames per MTCNN call.
        batch_size: faces (frame models) or windows (sequence models) per prediction batch.
        sequence_length: window length for sequence models (``None``: 80 for them, frames otherwise;
            ``0`` forces frame batches).
        iou_threshold, max_gap: tracking (:class:`affect.predict.tracks.IoUTracker`; gap in frames).
        image_size: crop size when neither the checkpoint nor the module names one.
        device: detection device (``None``: the model's).
        progress: show a progress bar over frames.
    """

    def __init__(
        self,
        inputs: str | list[str],
        select: str = "all",
        frame_stride: int = 1,
        detect_every: int = 1,
        min_face_size: int = 20,
        min_face_fraction: float = 0.0,
        detect_max_side: int = 1920,
        detect_batch_size: int = 16,
        batch_size: int = 64,
        sequence_length: int | None = None,
        iou_threshold: float = 0.3,
        max_gap: int = 10,
        image_size: int = 96,
        device: str | None = None,
        progress: bool = True,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if select not in ("all", "largest", "central"):
            raise ValueError(f"select must be 'all', 'largest' or 'central'; got {select!r}")
        if min(frame_stride, detect_every, batch_size, detect_batch_size, detect_max_side) < 1:
            raise ValueError("frame_stride, detect_every, batch_size, detect_batch_size and detect_max_side must be >= 1")
        self.inputs = expand_inputs(inputs)
        if not self.inputs:
            raise ValueError(f"no image or video found in inputs {inputs!r}")
        self.select = select
        self.frame_stride, self.detect_every = frame_stride, detect_every
        self.min_face_size, self.min_face_fraction = min_face_size, min_face_fraction
        self.detect_max_side, self.detect_batch_size = detect_max_side, detect_batch_size
        self.batch_size, self.sequence_length = batch_size, sequence_length
        self.iou_threshold, self.max_gap = iou_threshold, max_gap
        self.image_size, self.device, self.progress, self.num_workers = image_size, device, progress, num_workers
        self.table: FaceTable | None = None
        self.spaces: dict = {}
        self.crops: np.ndarray | None = None
        self.window_length = 0
        self.extract_seconds = float("nan")

    def options(self, image_size: int) -> FaceOptions:
        return FaceOptions(
            image_size=image_size, select=self.select, min_face_size=self.min_face_size,
            min_face_fraction=self.min_face_fraction, detect_every=self.detect_every,
            frame_stride=self.frame_stride, detect_max_side=self.detect_max_side,
            batch_size=self.detect_batch_size, iou_threshold=self.iou_threshold, max_gap=self.max_gap,
        )  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        if stage not in (None, "predict"):
            raise ValueError(f"MediaDataModule only predicts (affect predict); got stage {stage!r}")
        if self.table is not None:
            return
        trainer = getattr(self, "trainer", None)
        module = trainer.lightning_module if trainer is not None else None
        self.spaces = model_spaces(trainer, module)
        image_size = int(self.spaces.get("image_size") or self.image_size)
        self.spaces["image_size"] = image_size
        device = self.device or (str(trainer.strategy.root_device) if trainer is not None else "cpu")
        seq = self.sequence_length
        if seq is None:
            seq = DEFAULT_SEQUENCE_LENGTH if module is not None and is_sequence_module(module) else 0
        self.window_length = int(seq)
        self.table = self.extract(image_size, device)

    def extract(self, image_size: int, device: str) -> FaceTable:
        """Run the face pipeline over the inputs (progress bar over frames)."""
        from tqdm.auto import tqdm

        from affect.data.face import FaceDetector

        detector = FaceDetector(device=device, min_face_size=self.min_face_size, batch_size=self.detect_batch_size)
        extractor = FaceExtractor(detector, self.options(image_size))
        start = time.perf_counter()
        with tqdm(desc="affect predict: faces", unit="frame", disable=not self.progress) as bar:
            table = extractor.run(self.inputs, progress=bar.update)
        self.extract_seconds = time.perf_counter() - start
        size = image_size
        self.crops = np.stack(table.crops) if table.crops else np.zeros((0, size, size, 3), np.uint8)
        self._crop_of = np.array([r["crop"] for r in table.rows], np.int64)
        return table

    def predict_dataloader(self) -> DataLoader:
        if self.table is None:
            self.setup("predict")
        rows = self.table.rows
        if self.window_length > 0:
            dataset: Dataset = _Windows(self.crops, track_windows(rows, self.window_length), self.window_length, self._crop_of)
        else:
            faces = np.array([i for i, r in enumerate(rows) if r["crop"] >= 0], np.int64)
            dataset = _Faces(self.crops, faces, self._crop_of)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)

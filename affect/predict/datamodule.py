"""``MediaDataModule``: a user's photos / videos as prediction batches of aligned faces.

``affect predict --config experiments/predict/media.yaml --ckpt_path <ckpt> --data.init_args.inputs <file|folder|glob>``

In ``setup("predict")`` the inputs go through :class:`affect.predict.media.FaceExtractor` (MTCNN on
the model's device, 5-point alignment, IoU tracks; a progress bar over frames), which gives one row
per face and frame (and one per frame without a face) and the aligned crops. What the model takes
comes from the module's declaration (``input_spec``: :class:`affect.models.batching.InputSpec`,
frames or sequences, image and spectrogram sides; ``image_size`` here for a module without one), its
label spaces from the checkpoint's ``"affect"`` entry, handed over by the CLI that read and checked
the checkpoint once (:meth:`MediaDataModule.use_checkpoint`, :mod:`affect.models.checkpoint`).

Batches: frame models get ``image`` uint8 ``[N, 3, S, S]``, ``landmarks`` ``[N, 68, 2]`` (zeros,
``landmarks_mask`` False: MTCNN gives 5 points, not 68) and ``row`` ``[N]`` (the face's row in
:attr:`MediaDataModule.table`, read back by :class:`affect.predict.writer.MediaPredictionWriter`
from the batch). Sequence models (``input_spec.sequence``) get each track cut into
windows of ``sequence_length`` consecutive faces: ``image`` ``[B, T, 3, S, S]``, ``frame_mask``
``[B, T]`` (False on padding), ``row`` ``[B, T]`` (-1 on padding); a still image's face is a
one-frame sequence. Models that read ``batch["audio"]`` (``input_spec.audio_size``) also get ``audio`` uint8
``[B, T, 1, A, A]``, each face's frame's spectrogram image (:mod:`affect.predict.audio`).

Several processes (``--trainer.devices N --trainer.strategy ddp``): each process takes whole inputs
(:func:`shard_inputs`, so a video's tracks stay in one process) and runs detection and the model on
them; :class:`~affect.predict.writer.MediaPredictionWriter` gathers the rows on rank 0, which writes
the same outputs as one process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from affect.errors import ConfigError, MissingInputError
from affect.face import FaceDetector
from affect.io import MAX_FRAME_PIXELS, MAX_IMAGE_PIXELS
from affect.models.batching import InputSpec
from affect.models.checkpoint import CheckpointRecord
from affect.predict.audio import MISSING_AUDIO
from affect.predict.media import FaceExtractor, FaceOptions, FaceTable, expand_inputs

__all__ = ["MediaDataModule", "input_spec", "model_spaces", "shard_inputs"]

#: ``select`` values: faces kept per frame.
SELECT = ("all", "largest", "central")
#: The paper's sequence lengths are 80 (AffWildNet / CNN-RNN) and 90 (MT-VGG-GRU); 80 when not given.
DEFAULT_SEQUENCE_LENGTH = 80
NUM_LANDMARKS = 68


def model_spaces(checkpoint: CheckpointRecord | None, module: L.LightningModule | None) -> dict:
    """What predicting needs from the model: ``image_size``, ``tasks``, ``au_set``, ``expr_classes``,
    ``compound_classes`` — from the checked checkpoint's ``"affect"`` entry, else from the module
    (``label_spaces()`` / hyper-parameters)."""
    spaces: dict = dict(checkpoint.affect) if checkpoint is not None else {}
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


def input_spec(module: object, image_size: int) -> InputSpec:
    """What ``module`` takes (its ``input_spec``); frames of ``image_size`` for a module that
    declares nothing (a LightningModule of the user's own with a ``[B, 3, S, S]`` ``predict_step``)."""
    spec = getattr(module, "input_spec", None) if module is not None else None
    return spec if isinstance(spec, InputSpec) else InputSpec(int(image_size))


class _Faces(Dataset):
    """One item per face row."""

    def __init__(
        self, crops: np.ndarray, rows: np.ndarray, crop_of: np.ndarray,
        audio: np.ndarray | None = None, spec_of: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        self.crops, self.rows, self.crop_of, self.audio, self.spec_of = crops, rows, crop_of, audio, spec_of

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return _item(self.crops, [int(self.rows[i])], self.crop_of, self.audio, self.spec_of)


def _item(
    crops: np.ndarray, rows: list[int], crop_of: np.ndarray, audio: np.ndarray | None = None,
    spec_of: np.ndarray | None = None,
) -> dict:  # fmt: skip
    """Batch keys for one face (``len(rows) == 1``: no time axis) or a window of faces; ``audio`` uint8
    ``[1, H, W]`` spectrogram images per face when ``audio`` is given (A/V models)."""
    image = torch.from_numpy(np.ascontiguousarray(crops[crop_of[rows]])).permute(0, 3, 1, 2)
    n = len(rows)
    item = {
        "image": image[0] if n == 1 else image,
        "landmarks": torch.zeros((NUM_LANDMARKS, 2) if n == 1 else (n, NUM_LANDMARKS, 2)),
        "landmarks_mask": torch.zeros(() if n == 1 else (n,), dtype=torch.bool),
        "row": torch.tensor(rows[0] if n == 1 else rows, dtype=torch.int64),
    }
    if audio is not None and spec_of is not None:
        spec = torch.from_numpy(np.ascontiguousarray(audio[spec_of[rows]]))
        item["audio"] = spec[0] if n == 1 else spec
    return item


class _Windows(Dataset):
    """Track windows of ``length`` faces, padded by repeating the last face (masked)."""

    def __init__(
        self, crops: np.ndarray, windows: list[list[int]], length: int, crop_of: np.ndarray,
        audio: np.ndarray | None = None, spec_of: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        self.crops, self.windows, self.length, self.crop_of = crops, windows, length, crop_of
        self.audio, self.spec_of = audio, spec_of

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        rows = self.windows[i]
        pad = self.length - len(rows)
        item = _item(self.crops, rows + [rows[-1]] * pad, self.crop_of, self.audio, self.spec_of)
        if self.length == 1:  # keep the time axis
            item = {k: v.unsqueeze(0) for k, v in item.items()}
        item["row"] = torch.tensor(rows + [-1] * pad, dtype=torch.int64)
        item["frame_mask"] = torch.arange(self.length) < len(rows)
        return item


def track_windows(rows: list[Mapping], length: int, usable: np.ndarray | None = None) -> list[list[int]]:
    """Row indices of consecutive windows of at most ``length`` faces along each (input, face_id) track
    (``usable``: which rows may be used; default: every face row).

    >>> rows = [{"input": "v", "face_id": f, "frame": k, "crop": 0} for k in range(3) for f in (0, 1)]
    >>> track_windows(rows, 2)
    [[0, 2], [4], [1, 3], [5]]
    """
    tracks: dict[tuple[str, int], list[int]] = {}
    for i, r in enumerate(rows):
        if (r["crop"] >= 0) if usable is None else usable[i]:
            tracks.setdefault((r["input"], r["face_id"]), []).append(i)
    out = []
    for idx in tracks.values():
        idx = sorted(idx, key=lambda i: rows[i]["frame"])
        out.extend(idx[s : s + length] for s in range(0, len(idx), length))
    return out


def shard_inputs(inputs: list[str], world_size: int) -> list[list[str]]:
    """Inputs split over ``world_size`` processes, whole inputs only (a video's tracks stay on one
    process): largest file first to the least-loaded process (bytes), each shard in input order.

    >>> shard_inputs(["/nonexistent/a.mp4", "/nonexistent/b.jpg", "/nonexistent/c.png"], 2)
    [['/nonexistent/a.mp4', '/nonexistent/c.png'], ['/nonexistent/b.jpg']]
    """
    sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p in inputs]
    load = [0] * world_size
    owner = [0] * len(inputs)
    for i in sorted(range(len(inputs)), key=lambda i: (-sizes[i], i)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += max(sizes[i], 1)
    return [[p for p, o in zip(inputs, owner, strict=True) if o == r] for r in range(world_size)]


def check_options(**options) -> None:
    """A one-line :class:`~affect.errors.ConfigError` naming the ``data.init_args`` key, its value and
    what it takes, for a ``MediaDataModule`` option out of range."""
    def bad(key: str, want: str) -> ConfigError:
        return ConfigError(f"data.init_args.{key} is {options[key]!r}; it takes {want}")

    if options["select"] not in SELECT:
        raise bad("select", " or ".join(map(repr, SELECT)) + " (faces kept per frame)")
    if options["missing_audio"] not in MISSING_AUDIO:
        raise bad("missing_audio", " or ".join(map(repr, MISSING_AUDIO)))
    value = options["audio_context_s"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise bad("audio_context_s", "a number of seconds > 0")
    for key in ("frame_stride", "detect_every", "batch_size", "detect_batch_size", "detect_max_side"):
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad(key, "an integer >= 1")
    value = options["sequence_length"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise bad("sequence_length", "null (the model decides), 0 (frames) or an integer >= 1")


class MediaDataModule(L.LightningDataModule):
    """Photos and videos -> batches of aligned faces for ``affect predict`` (see the module docstring).

    Args:
        inputs: files, folders (recursive) or globs; images and videos may be mixed (``None``: no
            files, the faces come through :meth:`use_table`, as for frames already in memory).
        select: faces kept per frame: ``"all"``, ``"largest"`` or ``"central"``.
        frame_stride: keep every k-th video frame.
        detect_every: run MTCNN on every k-th kept frame; the tracked faces' boxes and 5 points are
            carried in between (``carried = 1`` in the CSV), so a face that appears or leaves is picked
            up at the next detection, within k frames. ``1``: per-frame detection.
        min_face_size: smallest face side (px) MTCNN searches for; also the smallest usable image side.
        min_face_fraction: smallest face side as a fraction of the frame's short side (``0`` = off);
            larger values skip MTCNN's finest pyramid levels (faster, misses smaller faces).
        detect_max_side: frames / images whose long side is larger are detected on a downscaled copy.
        max_image_pixels: images with more pixels (after a reduced-scale decode, which only JPEG
            allows) are refused unread, status ``too_large`` (:mod:`affect.io.image`).
        max_frame_pixels: video frames with more pixels are downscaled at decode (:mod:`affect.io.decode`).

    The speed defaults (``detect_every=3``, ``min_face_fraction=0.15``; the one place they are set,
    ``experiments/predict/media.yaml`` does not repeat them) were chosen by measured accuracy cost
    against per-frame detection at full settings (``benchmarks/bench_predict.py``, docs/predict_speed.md).
        detect_batch_size: frames per MTCNN call.
        batch_size: faces (frame models) or windows (sequence models) per prediction batch.
        sequence_length: window length for sequence models (``None``: 80 for them, frames otherwise;
            ``0`` forces frame batches).
        iou_threshold, max_gap: tracking (:class:`affect.predict.tracks.IoUTracker`; gap in frames).
        image_size: crop size when neither the checkpoint nor the module names one.
        missing_audio: A/V models on an input without audio (a video without an audio stream, an
            image): ``"skip"`` (rows kept, predictions empty) or ``"silence"``; either way the input's
            status is ``no_audio`` (:mod:`affect.predict.audio`).
        audio_context_s: seconds of audio per spectrogram image; must be the ``audio_context_s`` of the
            ``affect prepare --audio`` store the A/V model was trained on (0.3 there by default).
        device: detection device (``None``: the model's).
        progress: show a progress bar over frames.
    """

    def __init__(
        self,
        inputs: str | list[str] | None,
        select: str = "all",
        frame_stride: int = 1,
        detect_every: int = 3,
        min_face_size: int = 20,
        min_face_fraction: float = 0.15,
        detect_max_side: int = 1920,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        max_frame_pixels: int = MAX_FRAME_PIXELS,
        detect_batch_size: int = 16,
        batch_size: int = 64,
        sequence_length: int | None = None,
        iou_threshold: float = 0.3,
        max_gap: int = 10,
        image_size: int = 96,
        missing_audio: str = "skip",
        audio_context_s: float = 0.3,
        device: str | None = None,
        progress: bool = True,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        check_options(select=select, missing_audio=missing_audio, audio_context_s=audio_context_s,
                      frame_stride=frame_stride, detect_every=detect_every, batch_size=batch_size,
                      detect_batch_size=detect_batch_size, detect_max_side=detect_max_side,
                      sequence_length=sequence_length)  # fmt: skip
        if min(max_image_pixels, max_frame_pixels) < 1:
            raise ConfigError(
                "data.init_args.max_image_pixels and max_frame_pixels must be >= 1; "
                f"got {max_image_pixels}, {max_frame_pixels}"
            )
        self.inputs = expand_inputs(inputs) if inputs is not None else []  # None: frames in memory (Analyzer)
        if inputs is not None and not self.inputs:
            raise MissingInputError(
                f"data.init_args.inputs: no image or video found in {inputs!r} (no file, folder or glob match); "
                "check the paths, or quote a glob so that the shell does not expand it"
            )
        self.select = select
        self.frame_stride, self.detect_every = frame_stride, detect_every
        self.min_face_size, self.min_face_fraction = min_face_size, min_face_fraction
        self.detect_max_side, self.detect_batch_size = detect_max_side, detect_batch_size
        self.max_image_pixels, self.max_frame_pixels = max_image_pixels, max_frame_pixels
        self.batch_size, self.sequence_length = batch_size, sequence_length
        self.iou_threshold, self.max_gap = iou_threshold, max_gap
        self.image_size, self.device, self.progress, self.num_workers = image_size, device, progress, num_workers
        self.missing_audio, self.audio_context_s = missing_audio, audio_context_s
        self.table: FaceTable | None = None
        #: the checked checkpoint the CLI read (:meth:`use_checkpoint`)
        self.checkpoint: CheckpointRecord | None = None
        self.spaces: dict = {}
        self.crops: np.ndarray | None = None
        self.audio: np.ndarray | None = None
        self.window_length = 0
        self.audio_size = 0
        self.extract_seconds = float("nan")
        #: this process's inputs (all of them on one device; a shard of whole inputs with several)
        self.local_inputs: list[str] = list(self.inputs)
        self.world_size = 1
        # a process whose inputs have no face to run the model on has nothing to predict (Lightning's check)
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def options(self, image_size: int, audio_size: int = 0) -> FaceOptions:
        return FaceOptions(
            image_size=image_size, select=self.select, min_face_size=self.min_face_size,
            min_face_fraction=self.min_face_fraction, detect_every=self.detect_every,
            frame_stride=self.frame_stride, detect_max_side=self.detect_max_side,
            max_image_pixels=self.max_image_pixels, max_frame_pixels=self.max_frame_pixels,
            batch_size=self.detect_batch_size, iou_threshold=self.iou_threshold, max_gap=self.max_gap,
            audio_size=audio_size, audio_context_s=self.audio_context_s, missing_audio=self.missing_audio,
        )  # fmt: skip

    def use_checkpoint(self, record: CheckpointRecord) -> None:
        """The checkpoint the model comes from, read and checked once by the CLI (its label spaces)."""
        self.checkpoint = record

    def setup(self, stage: str | None = None) -> None:
        if stage not in (None, "predict"):
            raise ValueError(f"MediaDataModule only predicts (affect predict); got stage {stage!r}")
        if self.table is not None:
            return
        trainer = getattr(self, "trainer", None)
        module = trainer.lightning_module if trainer is not None else None
        device = self.device or (str(trainer.strategy.root_device) if trainer is not None else "cpu")
        # several processes: each takes whole inputs (tracks stay together); the writer merges
        self.world_size = int(trainer.world_size) if trainer is not None else 1
        rank = int(trainer.global_rank) if trainer is not None else 0
        self.local_inputs = shard_inputs(self.inputs, self.world_size)[rank] if self.world_size > 1 else list(self.inputs)
        image_size = self.configure(module, model_spaces(self.checkpoint, module))
        self.table = self.extract(image_size, device)

    def configure(self, module: L.LightningModule | None, spaces: Mapping) -> int:
        """Take the model's label spaces (:func:`model_spaces`) and set the crop size, the audio image
        size (A/V models) and the window length (sequence models); returns the crop size."""
        self.spaces = dict(spaces)
        spec = input_spec(module, self.spaces.get("image_size") or self.image_size)
        image_size = spec.image_size
        self.spaces["image_size"] = image_size
        self.audio_size = spec.audio_size
        if self.audio_size:
            self.spaces["audio_size"] = self.audio_size
        seq = self.sequence_length
        if seq is None:
            seq = DEFAULT_SEQUENCE_LENGTH if spec.sequence else 0
        self.window_length = int(seq)
        return image_size

    def extract(self, image_size: int, device: str, detector: FaceDetector | None = None) -> FaceTable:
        """Run the face pipeline over this process's inputs (progress bar over frames; ``detector``:
        an MTCNN to reuse, else one is made on ``device``)."""
        from tqdm.auto import tqdm

        if detector is None:
            detector = FaceDetector(device=device, min_face_size=self.min_face_size, batch_size=self.detect_batch_size)
        extractor = FaceExtractor(detector, self.options(image_size, self.audio_size))
        start = time.perf_counter()
        with tqdm(desc="affect predict: faces", unit="frame", disable=not self.progress) as bar:
            table = extractor.run(self.local_inputs, progress=bar.update)
        self.extract_seconds = time.perf_counter() - start
        return self.use_table(table)

    def use_table(self, table: FaceTable) -> FaceTable:
        """Predict on ``table`` (faces found by a :class:`FaceExtractor`): its crops (and spectrogram
        images) become the prediction batches."""
        size = int(self.spaces.get("image_size") or self.image_size)
        self.crops = np.stack(table.crops) if table.crops else np.zeros((0, size, size, 3), np.uint8)
        self._crop_of = np.array([r["crop"] for r in table.rows], np.int64)
        if self.audio_size:
            a = self.audio_size
            self.audio = np.stack(table.audio) if table.audio else np.zeros((0, 1, a, a), np.uint8)
            self._spec_of = np.array([r.get("spec", -1) for r in table.rows], np.int64)
        self.table = table
        return table

    def predict_dataloader(self) -> DataLoader:
        if self.table is None:
            self.setup("predict")
        rows = self.table.rows
        usable = self._crop_of >= 0
        audio = spec_of = None
        if self.audio_size:  # A/V models: only faces with their spectrogram image (see affect.predict.audio)
            usable &= self._spec_of >= 0
            audio, spec_of = self.audio, self._spec_of
        if self.window_length > 0:
            windows = track_windows(rows, self.window_length, usable)
            dataset: Dataset = _Windows(self.crops, windows, self.window_length, self._crop_of, audio, spec_of)
        else:
            dataset = _Faces(self.crops, np.flatnonzero(usable), self._crop_of, audio, spec_of)
        # several processes: this one's dataset is its shard already; a DistributedSampler of one
        # replica keeps Lightning from splitting it again (it only injects one where none is)
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=False) if self.world_size > 1 else None
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, sampler=sampler, num_workers=self.num_workers)

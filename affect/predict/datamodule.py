"""``MediaDataModule``: a user's photos / videos as prediction batches of aligned faces.

``affect predict --config experiments/predict/media.yaml --ckpt_path <ckpt> --data.init_args.inputs <file|folder|glob>``

The inputs are listed when the datamodule is made (:func:`affect.predict.media.expand_inputs`: each
real file once). ``setup("predict")`` reads what the model takes from its declaration (``input_spec``:
:class:`affect.models.batching.InputSpec`, frames or sequences, image and spectrogram sides;
``image_size`` here for a module without one) and its label spaces from the checkpoint's ``"affect"``
entry, handed over by the CLI that read and checked the checkpoint once
(:meth:`MediaDataModule.use_checkpoint`, :mod:`affect.models.checkpoint`). The prediction dataloader
is a :class:`~affect.predict.stream.FaceStream`: faces are extracted input by input as the model
consumes them (:class:`affect.predict.media.FaceExtractor`: MTCNN on the model's device, 5-point
alignment, IoU tracks; a progress bar over frames) — one row per face and frame (and one per frame
without a face) — batched for frame models (``image`` uint8 ``[N, 3, S, S]``) or, for sequence models
(AffWildNet, CNN-RNNs, MT-VGG-GRU), as windows of ``sequence_length`` consecutive faces of a track
(``[B, T, 3, S, S]``, ``frame_mask``, ``row`` -1 on padding; a still image's face is a one-frame
sequence); A/V models also get each face's frame's spectrogram image (:mod:`affect.predict.audio`).
:class:`~affect.predict.writer.MediaPredictionWriter` passes the outputs back by ``row`` and writes
the rows as they are done, so memory is bounded by ``stream_rows`` rows, not by the inputs' length.

Several processes (``--trainer.devices N --trainer.strategy ddp``): each process takes whole inputs
(:func:`shard_inputs`, so a video's tracks stay in one process) and runs detection and the model on
them; each writes its inputs' CSVs, rank 0 the combined files (see the writer).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from affect.errors import ConfigError, MissingInputError
from affect.face.detect import REFINE_PASSES
from affect.io import MAX_FRAME_PIXELS, MAX_IMAGE_PIXELS
from affect.models.batching import InputSpec
from affect.models.checkpoint import CheckpointRecord
from affect.predict.audio import MISSING_AUDIO
from affect.predict.media import FaceExtractor, FaceOptions, expand_inputs
from affect.predict.stream import FaceStream

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
    for key in ("frame_stride", "detect_every", "batch_size", "detect_batch_size", "detect_max_side", "stream_rows"):
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
            files, as for frames already in memory: :meth:`face_stream` with a ``source``).
        select: faces kept per frame: ``"all"``, ``"largest"`` or ``"central"``.
        frame_stride: keep every k-th video frame.
        detect_every: run MTCNN on every k-th kept frame; the tracked faces' boxes and 5 points are
            carried in between (``carried = 1`` in the CSV), so a face that appears or leaves is picked
            up at the next detection, within k frames. ``1``: per-frame detection.
        min_face_size: smallest face side (px) MTCNN searches for; also the smallest usable image side.
        min_face_fraction: smallest face side as a fraction of the frame's short side (``0`` = off);
            larger values skip MTCNN's finest pyramid levels (faster, misses smaller faces).
        detect_max_side: frames / images whose long side is larger are detected on a downscaled copy.
        refine_passes: O-Net passes refining each face's 5 points on a box made from them, in every
            frame, carried ones included (:mod:`affect.face.refine`: the points, hence the crops, stop
            depending on the detection settings; ``0``: MTCNN's points, carried faces keep theirs).
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
        num_workers: kept for older configs; faces are extracted in the main process, as the model
            consumes them (the writer takes their rows back from the stream).
        stream_rows: rows (faces and frames without one) that may wait for the model before the
            pending partial batch is sent anyway; bounds memory (crops of 96 px: ~28 KB each).
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
        refine_passes: int = REFINE_PASSES,
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
        stream_rows: int = 4096,
    ) -> None:
        super().__init__()
        check_options(select=select, missing_audio=missing_audio, audio_context_s=audio_context_s,
                      frame_stride=frame_stride, detect_every=detect_every, batch_size=batch_size,
                      detect_batch_size=detect_batch_size, detect_max_side=detect_max_side,
                      sequence_length=sequence_length, stream_rows=stream_rows)  # fmt: skip
        if not isinstance(refine_passes, int) or refine_passes < 0:
            raise ConfigError(f"data.init_args.refine_passes must be an integer >= 0; got {refine_passes!r}")
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
        self.refine_passes = refine_passes
        self.max_image_pixels, self.max_frame_pixels = max_image_pixels, max_frame_pixels
        self.batch_size, self.sequence_length = batch_size, sequence_length
        self.iou_threshold, self.max_gap = iou_threshold, max_gap
        self.image_size, self.device, self.progress, self.num_workers = image_size, device, progress, num_workers
        self.missing_audio, self.audio_context_s = missing_audio, audio_context_s
        #: the checked checkpoint the CLI read (:meth:`use_checkpoint`)
        self.checkpoint: CheckpointRecord | None = None
        self.stream_rows = stream_rows
        self.spaces: dict = {}
        self.window_length = 0
        self.audio_size = 0
        self.prepared = False
        self.detect_device = device or "cpu"
        #: where the stream hands its rows (the MediaPredictionWriter sets itself here)
        self.sink = None
        self.stream: FaceStream | None = None
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
        if self.prepared:
            return
        trainer = getattr(self, "trainer", None)
        module = trainer.lightning_module if trainer is not None else None
        device = self.device or (str(trainer.strategy.root_device) if trainer is not None else "cpu")
        # several processes: each takes whole inputs (tracks stay together); the writer merges
        self.world_size = int(trainer.world_size) if trainer is not None else 1
        rank = int(trainer.global_rank) if trainer is not None else 0
        self.local_inputs = shard_inputs(self.inputs, self.world_size)[rank] if self.world_size > 1 else list(self.inputs)
        self.configure(module, model_spaces(self.checkpoint, module))
        self.detect_device = device
        self.prepared = True

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

    def predict_dataloader(self) -> DataLoader:
        """The :class:`~affect.predict.stream.FaceStream` over this process's inputs: faces are
        extracted as the model consumes them (in this process: the writer takes their rows back)."""
        if not self.prepared:
            self.setup("predict")
        if self.sink is None:
            raise ConfigError(
                "MediaDataModule needs a MediaPredictionWriter callback to take its rows (experiments/predict/media.yaml "
                "has one under trainer.callbacks)"
            )
        self.stream = self.face_stream(self.sink)
        return DataLoader(self.stream, batch_size=None, num_workers=0)

    def face_stream(self, sink, detector=None, source=None) -> FaceStream:
        """A :class:`~affect.predict.stream.FaceStream` of this process's inputs into ``sink`` (after
        :meth:`configure`); ``detector``: an MTCNN to reuse (else one is made on the detection device);
        ``source``: what makes the faces (:meth:`FaceExtractor.stream`'s signature; default a
        :class:`FaceExtractor` with this module's options)."""
        if source is None:
            from affect.face import FaceDetector

            if detector is None:
                detector = FaceDetector(device=self.detect_device, min_face_size=self.min_face_size,
                                        batch_size=self.detect_batch_size, refine=self.refine_passes)  # fmt: skip
            source = FaceExtractor(detector, self.options(int(self.spaces["image_size"]), self.audio_size))
        return FaceStream(
            source, self.local_inputs, sink, batch_size=self.batch_size, window_length=self.window_length,
            audio=self.audio_size > 0, max_pending=self.stream_rows, max_gap_frames=self.max_gap * self.frame_stride,
            progress=self.progress,
        )  # fmt: skip

    @property
    def extract_seconds(self) -> float:
        """Seconds this process spent on faces (decode, detect, align, track)."""
        return self.stream.extract_seconds if self.stream is not None else float("nan")

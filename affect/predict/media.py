"""A user's photos and videos -> a table of faces (one row per face and frame) plus aligned crops.

The face pipeline is the project's (paper Sec. IV, ``affect.face``): facenet-pytorch MTCNN
(:class:`~affect.face.FaceDetector`, batched, on the model's device), the 5 MTCNN points,
:func:`~affect.face.align_face`'s similarity warp onto the frontal template. This module adds
what running on arbitrary media needs:

- **inputs**: files, folders (recursive) and globs; images and videos, decoded by the media reader
  :mod:`affect.io` (any Pillow mode, EXIF orientation and video display rotation applied, so faces
  are upright as a viewer shows them; timestamps are the decoded frames' presentation times, so
  variable frame rates give real times); ``frame_stride`` keeps every k-th frame;
- **bad input is a counted, named status, never a crash**: ``not_found``, ``empty`` (0 bytes),
  ``unreadable``, ``truncated`` (a video whose decoding fails after some frames: the decoded frames
  are kept), ``too_small`` (a side below MTCNN's minimum face size, which crashes facenet's
  ``torch.cat``), ``no_face``, ``too_large`` (an image above ``max_image_pixels`` that cannot be
  decoded at a reduced scale); huge images are decoded reduced where the format allows it (JPEG)
  or reduced right after decoding, detected on a downscaled copy (``detect_max_side``) and aligned
  on the decoded image (``downscaled`` in the input's detail); video frames above
  ``max_frame_pixels`` are downscaled at decode;
- **faces linked across frames** into tracks (``face_id``) by box overlap (:mod:`affect.predict.tracks`);
  optionally detection only every ``detect_every``-th frame with the tracked faces' boxes and points
  carried in between (py-feat's ``skip_frames``), and a minimum face size relative to the frame
  (``min_face_fraction``: fewer MTCNN pyramid levels);
- **frames without a face** are rows with ``face_detected = 0`` (never silently missing);
- **audio for A/V models** (``FaceOptions.audio_size > 0``): one spectrogram image per used frame,
  by timestamp, as ``affect prepare --audio`` stores them (:mod:`affect.predict.audio`); an input
  without audio is ``no_audio``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affect.face import Face, FaceDetector, align_face, select_faces
from affect.face.detect import is_face_crop
from affect.face.pipeline import detect_faces, is_whole_image
from affect.io import (
    MAX_FRAME_PIXELS,
    MAX_IMAGE_PIXELS,
    MediaReadError,
    VideoReader,
    decode_image,
    is_image,
    is_video,
)
from affect.predict.tracks import IoUTracker

#: Every status an input can end with (the summary counts each).
STATUSES = (
    "ok", "no_face", "not_found", "empty", "unreadable", "truncated", "too_small", "too_large", "no_audio", "non_finite",
)  # fmt: skip
#: Names of MTCNN's 5 points, in its order (affect.face.template).
#: A video decoding to fewer than this fraction of its declared frames is reported ``truncated``.
TRUNCATED = 0.95
POINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def expand_inputs(inputs: str | list[str]) -> list[str]:
    """Files, folders (recursive: every image / video inside, sorted) and globs -> a list of paths, each
    real file once (:func:`affect.predict.inputs.expand_inputs`).

    A path that does not exist and matches no glob is kept (it becomes a ``not_found`` row).

    >>> expand_inputs(["/nonexistent/a.mp4"])
    ['/nonexistent/a.mp4']
    """
    from affect.predict.inputs import expand_inputs as expand

    return expand(inputs, keep=lambda f: is_image(f) or is_video(f))


@dataclass
class InputReport:
    """What happened to one input: ``status`` (one of :data:`STATUSES`), frames read, faces found."""

    input: str
    kind: str  # "image" | "video" | "unknown"
    status: str = "ok"
    detail: str = ""
    frames: int = 0
    faces: int = 0
    frames_without_face: int = 0
    width: int = 0
    height: int = 0
    fps: float = float("nan")
    non_finite_faces: int = 0  # faces whose model outputs were NaN / inf (set by the writer)


@dataclass
class FaceTable:
    """Rows (one per face and frame, or one per frame without a face) and the aligned crops: all of
    them (:meth:`FaceExtractor.run`) or one piece of an input (:meth:`FaceExtractor.stream`).

    ``rows`` is a list of dicts with the metadata columns of :data:`affect.predict.columns.META_COLUMNS`
    plus ``crop`` (index into ``crops``, -1 for a frame without a face) and, for A/V models, ``spec``
    (index into ``audio``, uint8 ``[1, H, W]`` spectrogram images; -1: no audio for that face).
    """

    rows: list[dict] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    reports: list[InputReport] = field(default_factory=list)


@dataclass(frozen=True)
class FaceOptions:
    """Detection options (see the module docstring)."""

    image_size: int = 96
    select: str = "all"  # "all" | "largest" | "central"
    min_face_size: int = 20
    min_face_fraction: float = 0.0
    detect_every: int = 1
    frame_stride: int = 1
    detect_max_side: int = 1920
    batch_size: int = 16
    iou_threshold: float = 0.3
    max_gap: int = 10
    max_image_pixels: int = MAX_IMAGE_PIXELS  # above (and not decodable reduced): too_large
    max_frame_pixels: int = MAX_FRAME_PIXELS  # video frames above are downscaled at decode
    audio_size: int = 0  # > 0: spectrogram images of this side per face row (A/V models)
    audio_context_s: float = 0.3  # seconds of audio per image (affect prepare's audio_context_s)
    missing_audio: str = "skip"  # "skip" | "silence": what an input without audio gets (see affect.predict.audio)


@dataclass
class VideoTracks:
    """The state of one video stream between batches of frames: the IoU tracker, the faces carried to
    frames without detection, and the number of frames processed (which frames are detected)."""

    tracker: IoUTracker
    carried: list[Face] = field(default_factory=list)
    frames: int = 0

    @classmethod
    def start(cls, options: FaceOptions) -> VideoTracks:
        return cls(IoUTracker(options.iou_threshold, options.max_gap * options.frame_stride))


def _read_image(path: str, max_pixels: int, max_side: int) -> tuple[np.ndarray, float, str]:
    """:func:`affect.io.decode_image` as ``(image, factor, detail)``: source pixels = decoded pixels x
    ``factor``; ``detail`` names a reduced decode (long side above 4 x ``max_side``)."""
    decoded = decode_image(path, max_side, max_pixels)
    return decoded.rgb, decoded.factor, decoded.detail


def iter_video(
    path: str, stride: int, times=None, max_pixels: int = MAX_FRAME_PIXELS
) -> Iterator[tuple[int, float, np.ndarray, float]]:
    """``(frame index, time s, RGB, fps)`` of every ``stride``-th decoded frame (:class:`affect.io.VideoReader`);
    ``times`` (a list or anything with ``append``), when given, receives the time of *every* decoded frame
    (A/V models: the spectrogram images need all of them).

    Raises :class:`~affect.io.MediaReadError` on a decode error (after yielding the frames decoded so far).
    """
    with VideoReader(path, max_pixels) as reader:
        for k, t, rgb in reader.frames(stride, times=times):
            yield k, t, rgb, reader.fps


def declared_frames(path: str) -> int:
    """The frame count the container declares, else its duration x frame rate (0 when unknown);
    a video decoding to fewer frames was cut short (``truncated``)."""
    try:
        with VideoReader(path) as reader:
            return reader.declared_frames
    except MediaReadError:
        return 0


class FaceExtractor:
    """Runs detection + alignment + tracking over inputs and fills a :class:`FaceTable`."""

    def __init__(self, detector: FaceDetector, options: FaceOptions) -> None:
        if options.detect_every < 1 or options.frame_stride < 1:
            raise ValueError(
                f"detect_every and frame_stride must be >= 1; got {options.detect_every}, {options.frame_stride}"
            )
        self.detector = detector
        self.opts = options

    # ------------------------------------------------------------------ detection
    def detect(self, frames: list[np.ndarray], min_face_fraction: float = 0.0) -> list[list[Face]]:
        """MTCNN on frames of one size, on a downscaled copy when the long side exceeds
        ``detect_max_side``; boxes and points are mapped back to the full-resolution frame.
        ``min_face_fraction``: video frames pass ``FaceOptions.min_face_fraction`` (a speed option);
        photos keep the default 0, every face size (one detection each: speed hardly matters there)."""
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        scale = min(1.0, self.opts.detect_max_side / max(h, w))
        if scale < 1.0:
            import cv2

            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        else:
            small = frames
        sh, sw = small[0].shape[:2]
        min_face = max(self.opts.min_face_size, int(min_face_fraction * min(sh, sw)))
        if min(sh, sw) < min_face:
            return [[] for _ in frames]
        self.detector.mtcnn.min_face_size = min_face
        found = self.detector.detect(small)
        if scale < 1.0:
            found = [
                [Face(box=f.box / scale, score=f.score, points=f.points / scale) for f in faces] for faces in found
            ]
        return found

    # ------------------------------------------------------------------ inputs
    def run(self, inputs: list[str], progress: Callable[[int], None] | None = None) -> FaceTable:
        """Every input's rows and crops in one table (small inputs; :meth:`stream` bounds memory)."""
        table = FaceTable()
        for path in inputs:
            report = InputReport(input=path, kind="unknown")
            for _ in self._steps(path, table, report, progress, pieces=False):
                pass
            table.reports.append(report)
        return table

    def stream(
        self, inputs: list[str], progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[FaceTable, InputReport | None]]:
        """Per input, its rows and crops in pieces as they are made: ``(piece, None)`` for each
        detection batch of a video's frames, then ``(last piece, report)`` once the input is done
        (``piece.rows[i]["crop"]`` indexes ``piece.crops`` / ``["spec"]`` ``piece.audio``)."""
        for path in inputs:
            table = FaceTable()
            report = InputReport(input=path, kind="unknown")
            for _ in self._steps(path, table, report, progress, pieces=True):
                if table.rows:
                    yield FaceTable(rows=table.rows, crops=table.crops, audio=table.audio), None
                    table.rows, table.crops, table.audio = [], [], []  # the video loop appends to the same table
            yield table, report

    def _steps(self, path: str, table: FaceTable, report: InputReport, progress, pieces: bool) -> Iterator[None]:
        """Fill ``table`` with one input's rows and ``report``; with ``pieces``, yield after each
        detection batch of a video's frames (the caller may then take the rows made so far)."""
        kind = "video" if is_video(path) else "image" if is_image(path) else "unknown"
        report.kind = kind
        p = Path(path)
        if not p.is_file():
            report.status, report.detail = "not_found", "no such file"
            return
        if p.stat().st_size == 0:
            report.status, report.detail = "empty", "zero-byte file"
            return
        if kind == "unknown":
            kind = report.kind = "image"  # let PIL decide (unknown suffix)
        audio = None
        if self.opts.audio_size > 0:
            from affect.predict.audio import InputAudio

            audio = InputAudio(path, kind, self.opts)
        try:
            if kind == "image":
                first = len(table.rows)
                self._image(path, table, report)
                if audio is not None:
                    audio.attach(table.rows[first:], table)
                if progress:
                    progress(1)
            else:
                for _ in self._video(path, table, report, progress, audio):
                    if pieces:
                        yield
        except MediaReadError as e:
            if report.frames:
                report.status, report.detail = "truncated", f"{report.frames} frames read; {e}"
            else:
                report.status, report.detail = ("too_large" if e.status == "too_large" else "unreadable"), str(e)
        if report.status == "ok" and report.frames and report.faces == 0:
            report.status = "no_face"
        if audio is not None:
            audio.finish(report)

    def _image(self, path: str, table: FaceTable, report: InputReport) -> None:
        rgb, factor, detail = _read_image(path, self.opts.max_image_pixels, self.opts.detect_max_side)
        report.height, report.width = (round(v * factor) for v in rgb.shape[:2])
        report.frames = 1
        if min(rgb.shape[:2]) < self.opts.min_face_size:
            report.status = "too_small"
            report.detail = f"{report.width}x{report.height} is smaller than the minimum face size {self.opts.min_face_size}"
            report.frames_without_face = 1
            table.rows.append(_row(path, "image", 0, float("nan"), None, -1, False, -1))
            return
        if max(rgb.shape[:2]) > self.opts.detect_max_side:
            detail = detail or f"detected on a copy downscaled to {self.opts.detect_max_side} px"
        report.detail = detail
        if is_face_crop(rgb.shape):  # a face crop (FER2013-like): the shared rule of affect prepare
            faces = detect_faces([rgb], self.detector, self.opts.select)[0]
            if faces and is_whole_image(faces[0]):
                report.detail = "no face detected in this face-crop-sized image: the whole image is the face"
        else:
            faces = select_faces(self.detect([rgb])[0], self.opts.select, rgb.shape)
            faces = sorted(faces, key=lambda f: -f.area)
        self._emit(path, "image", 0, float("nan"), rgb, faces, list(range(len(faces))), False, table, report, factor)

    def _video(self, path: str, table: FaceTable, report: InputReport, progress, audio) -> Iterator[None]:
        """Rows of a video's frames into ``table``; yields after each detection batch. A batch is
        processed once the frame after it is decoded (or the video has ended), so that ``audio``
        (:class:`affect.predict.audio.InputAudio`, A/V models) knows the batch's frame times."""
        tracks = VideoTracks.start(self.opts)
        pending: list[tuple[int, float, np.ndarray]] = []

        def flush(ended: bool) -> None:
            first = len(table.rows)
            self.add_video_frames(path, pending, table, report, tracks)
            if audio is not None:
                if ended:
                    audio.clock.end()
                audio.attach(table.rows[first:], table)
            if progress and pending:
                progress(len(pending))
            pending.clear()

        last = -1
        times = audio.clock if audio is not None else None
        try:
            for k, t, rgb, fps in iter_video(path, self.opts.frame_stride, times, self.opts.max_frame_pixels):
                if len(pending) >= self.opts.batch_size:
                    flush(False)
                    yield
                last = k
                report.fps = fps
                report.height, report.width = rgb.shape[:2]
                report.frames += 1
                pending.append((k, t, rgb))
        except MediaReadError:
            flush(True)  # the frames decoded before the error keep their rows
            raise
        flush(True)
        yield
        if report.frames == 0:
            raise MediaReadError(f"video {path!r} decoded to no frames")
        declared, decoded = declared_frames(path), last + self.opts.frame_stride  # frames up to the next kept one
        if declared and decoded < TRUNCATED * declared:
            report.status = "truncated"
            report.detail = f"decoded {decoded} of the {declared} frames the container declares"

    def add_video_frames(
        self, path: str, frames: list[tuple[int, float, np.ndarray]], table: FaceTable, report: InputReport,
        tracks: VideoTracks,
    ) -> None:  # fmt: skip
        """Detect (every ``detect_every``-th frame of the stream; the tracked faces carried in between),
        track and record one batch of a video's ``(frame index, time s, RGB)`` frames, all of one size.
        ``tracks`` carries the stream's state from batch to batch (:class:`affect.Analyzer` keeps it
        across calls for frames already in memory)."""
        if not frames:
            return
        first = tracks.frames
        tracks.frames += len(frames)
        if min(frames[0][2].shape[:2]) < self.opts.min_face_size:
            for k, t, _ in frames:
                report.frames_without_face += 1
                table.rows.append(_row(path, "video", k, t, None, -1, False, -1))
            report.status = "too_small"
            report.detail = f"{report.width}x{report.height} frames are smaller than the minimum face size"
            return
        todo = [i for i in range(len(frames)) if (first + i) % self.opts.detect_every == 0]
        found = dict(zip(todo, self.detect([frames[i][2] for i in todo], self.opts.min_face_fraction), strict=True))
        for i, (k, t, rgb) in enumerate(frames):
            is_carried = i not in found
            if is_carried:  # the tracked faces' points refined on this frame: they follow the face
                faces = self.detector.refine([rgb], [tracks.carried])[0]
            else:
                faces = select_faces(found[i], self.opts.select, rgb.shape)
            ids = tracks.tracker.update(k, [f.box for f in faces])
            tracks.carried = faces
            self._emit(path, "video", k, t, rgb, faces, ids, is_carried, table, report)

    def _emit(self, path, kind, frame, time, rgb, faces, ids, is_carried, table: FaceTable, report, factor=1.0) -> None:
        """Align and record the faces of one frame (``factor``: decoded -> source pixel scale)."""
        if not faces:
            report.frames_without_face += 1
            table.rows.append(_row(path, kind, frame, time, None, -1, False, -1))
            return
        for face, fid in zip(faces, ids, strict=True):
            crop, _, _ = align_face(rgb, points5=face.points, size=self.opts.image_size)
            source = face if factor == 1.0 else Face(face.box * factor, face.score, face.points * factor)
            table.rows.append(_row(path, kind, frame, time, source, fid, is_carried, len(table.crops)))
            table.crops.append(crop)
            report.faces += 1


def _row(path: str, kind: str, frame: int, time: float, face: Face | None, face_id: int, carried: bool, crop: int) -> dict:
    row = {"input": path, "kind": kind, "frame": int(frame), "time_s": float(time), "face_detected": int(face is not None),
           "whole_image": int(face is not None and is_whole_image(face)),
           "face_id": int(face_id), "carried": int(carried), "crop": int(crop)}  # fmt: skip
    if face is None:
        row.update({k: float("nan") for k in ("box_x", "box_y", "box_w", "box_h", "score")})
        row.update({f"{n}_{a}": float("nan") for n in POINT_NAMES for a in "xy"})
        return row
    x1, y1, x2, y2 = (float(v) for v in face.box)
    row.update(box_x=x1, box_y=y1, box_w=x2 - x1, box_h=y2 - y1, score=float(face.score))
    for name, (px, py) in zip(POINT_NAMES, face.points, strict=True):
        row[f"{name}_x"], row[f"{name}_y"] = float(px), float(py)
    return row

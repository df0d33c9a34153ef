"""Video corpora: decode a video once into a folder of numbered JPEG frames (PyAV), and back.

The manifest (``affect.data.manifest``) lists one image file per frame, so the video corpora
(DISFA, SEWA, OMG-Emotion) turn each video into a frame folder the first time it is parsed:

- ``extract_frames(video, out_dir)`` decodes every frame with PyAV (FFmpeg's decoder, one
  sequential pass) and writes ``out_dir/00001.jpg, 00002.jpg, ...`` (**1-based**, 5 digits, as
  Aff-Wild2's ``cropped_aligned`` frames) plus ``out_dir/frames.json`` holding the frame count,
  the presentation time (seconds) of every frame and the source file's size. The JSON is written
  last, so its presence means a complete extraction; a later call with the same source size
  returns it without decoding (the cache). Times come from the decoded frames' timestamps, so
  variable frame rates and streams that do not start at 0 are handled.
- ``list_frame_files(folder)`` reads a frame folder someone extracted by other means
  (``<number>.jpg|png``, any zero padding), for corpora whose frames the user already has.
- ``write_video(path, frames, fps)`` encodes uint8 frames (fixtures, demos): ``mpeg4`` for
  ``.avi``, ``h264`` (libx264) otherwise, ``yuv420p``. Both encoders ship in PyAV's bundled FFmpeg.

JPEG quality 95 by default: the frames are later cropped and resized to 96x96, so artefacts
at that quality do not survive; frames of a 1024x768 DISFA video take ~100-150 kB each.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INDEX_FILE = "frames.json"
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v", ".flv", ".wmv")
_NUMBERED = re.compile(r"^(\d+)$")


class VideoDecodeError(RuntimeError):
    """A video that is missing, has no video stream, or cannot be decoded."""


def frame_file_name(number: int, suffix: str = ".jpg") -> str:
    """File name of 1-based frame ``number`` in an extracted folder.

    >>> frame_file_name(1), frame_file_name(4845)
    ('00001.jpg', '04845.jpg')
    """
    if number < 1:
        raise ValueError(f"frame numbers are 1-based, got {number}")
    return f"{number:05d}{suffix}"


@dataclass
class FrameIndex:
    """What a frame folder holds: ``n_frames`` frames named ``frame_file_name(1..n_frames)``,
    ``times[k]`` the presentation time (s) of frame ``k + 1``, ``fps`` the stream's average rate."""

    n_frames: int
    fps: float
    times: np.ndarray = field(repr=False)
    source_size: int = -1

    def to_json(self) -> dict:
        return {
            "n_frames": self.n_frames, "fps": self.fps, "source_size": self.source_size,
            "times": [round(float(t), 6) for t in self.times],
        }

    @classmethod
    def from_json(cls, data: dict) -> FrameIndex:
        times = np.asarray(data["times"], dtype=np.float64)
        if len(times) != int(data["n_frames"]):
            raise ValueError(f"frame index lists {len(times)} times for {data['n_frames']} frames")
        return cls(int(data["n_frames"]), float(data["fps"]), times, int(data.get("source_size", -1)))


def read_frame_index(out_dir: str | Path) -> FrameIndex | None:
    """The ``frames.json`` of a completed extraction, or None if there is none (or it is unreadable)."""
    path = Path(out_dir) / INDEX_FILE
    try:
        return FrameIndex.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def extract_frames(video: str | Path, out_dir: str | Path, quality: int = 95, overwrite: bool = False) -> FrameIndex:
    """Decode every frame of ``video`` into ``out_dir/00001.jpg ...`` once; later calls reuse it.

    The cache is valid when ``out_dir/frames.json`` exists and records the current size of
    ``video``; otherwise (or with ``overwrite``) the video is decoded again. Raises
    :class:`VideoDecodeError` naming the file when it is missing or cannot be decoded.
    """
    import av
    from PIL import Image

    video, out_dir = Path(video), Path(out_dir)
    if not video.is_file():
        raise VideoDecodeError(f"video not found: {video}")
    size = video.stat().st_size
    cached = None if overwrite else read_frame_index(out_dir)
    if cached is not None and cached.source_size == size:
        return cached
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INDEX_FILE).unlink(missing_ok=True)
    times: list[float] = []
    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{video} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else float("nan")
            for k, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else (k / fps if np.isfinite(fps) else float("nan"))
                times.append(float(t))
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(
                    out_dir / frame_file_name(k + 1), quality=quality
                )
    except av.error.FFmpegError as err:
        raise VideoDecodeError(f"cannot decode video {video}: {err}") from None
    if not times:
        raise VideoDecodeError(f"video {video} decoded to no frames")
    index = FrameIndex(len(times), fps, np.asarray(times, np.float64), size)
    tmp = out_dir / (INDEX_FILE + ".tmp")
    tmp.write_text(json.dumps(index.to_json()))
    os.replace(tmp, out_dir / INDEX_FILE)
    return index


def list_frame_files(folder: str | Path, suffixes: tuple[str, ...] = FRAME_SUFFIXES) -> dict[int, str]:
    """``{frame number: file name}`` of the numbered images in ``folder`` (``12.jpg``, ``00012.png``).

    Files whose stem is not an integer are ignored; a missing folder gives ``{}``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    out: dict[int, str] = {}
    for entry in os.scandir(folder):
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() in suffixes and _NUMBERED.match(stem):
            out[int(stem)] = entry.name
    return out


def write_video(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str | None = None) -> Path:
    """Encode uint8 frames ``[T, H, W, 3]`` (H, W even) into ``path`` with PyAV.

    ``codec`` defaults to ``mpeg4`` for ``.avi`` and ``h264`` for other containers. Returns ``path``.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {frames.shape[1]}x{frames.shape[2]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or ("mpeg4" if path.suffix.lower() == ".avi" else "h264")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            stream.bit_rate = 4_000_000
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_frame_paths(
    video: str | Path, folder: str | Path, root: str | Path, extract: bool = True, quality: int = 95
) -> tuple[dict[int, str], np.ndarray | None]:
    """The frames of one video as ``({1-based frame number: manifest path}, times or None)``.

    With ``extract`` the video is decoded into ``folder`` on first use (:func:`extract_frames`;
    a completed folder is reused even if the video has since been removed). Without it,
    ``folder`` must already hold numbered images (:func:`list_frame_files`); their times are
    known only if a ``frames.json`` is present. Paths are relative to ``root`` when ``folder``
    lies inside it (the manifest convention), absolute otherwise. Raises
    :class:`VideoDecodeError` when neither a decodable video nor the frames exist.
    """
    video, folder, root = Path(video), Path(folder), Path(root)
    index: FrameIndex | None
    if extract:
        index = read_frame_index(folder) if not video.exists() else None
        if index is None:
            index = extract_frames(video, folder, quality=quality)
        names = {k: frame_file_name(k) for k in range(1, index.n_frames + 1)}
    else:
        names = list_frame_files(folder)
        if not names:
            raise VideoDecodeError(f"no extracted frames (<number>.jpg|png) in {folder}")
        index = read_frame_index(folder)
    folder_abs, root_abs = folder.resolve(), root.resolve()
    prefix = folder_abs.relative_to(root_abs) if folder_abs.is_relative_to(root_abs) else folder_abs
    paths = {k: (prefix / name).as_posix() for k, name in names.items()}
    return paths, (index.times if index is not None else None)

"""Video corpora: decode a video once into a folder of numbered JPEG frames (PyAV), and back.

The manifest (``affect.data.manifest``) lists one image file per frame, so the video corpora
(DISFA, SEWA, OMG-Emotion) turn each video into a frame folder the first time it is parsed:

- ``extract_frames(video, out_dir)`` decodes every frame with the media reader
  (:class:`affect.io.VideoReader`: one sequential PyAV pass, display rotation applied) and
  writes ``out_dir/00001.jpg, 00002.jpg, ...`` (**1-based**, 5 digits, as Aff-Wild2's
  ``cropped_aligned`` frames) plus ``out_dir/frames.json`` holding the frame count,
  the presentation time (seconds) of every frame and the source file's size. The JSON is written
  last, so its presence means a complete extraction; a later call with the same source size
  returns it without decoding (the cache). Times follow the reader's one frame-time rule
  (presentation timestamps), so variable frame rates and streams that do not start at 0 are handled.
- ``list_frame_files(folder)`` reads a frame folder someone extracted by other means
  (``<number>.jpg|png``, any zero padding), for corpora whose frames the user already has.

Errors are :class:`affect.io.MediaReadError` (the message names the video or folder).

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

from affect.io import FRAME_SUFFIXES, MediaReadError, VideoReader

INDEX_FILE = "frames.json"
_NUMBERED = re.compile(r"^(\d+)$")


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
    :class:`~affect.io.MediaReadError` naming the file when it is missing or cannot be decoded.
    """
    from PIL import Image

    video, out_dir = Path(video), Path(out_dir)
    if not video.is_file():
        raise MediaReadError(f"video not found: {video}", status="not_found")
    size = video.stat().st_size
    cached = None if overwrite else read_frame_index(out_dir)
    if cached is not None and cached.source_size == size:
        return cached
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INDEX_FILE).unlink(missing_ok=True)
    times: list[float] = []
    with VideoReader(video) as reader:
        fps = reader.fps
        for k, t, rgb in reader.frames():
            times.append(t)
            Image.fromarray(rgb).save(out_dir / frame_file_name(k + 1), quality=quality)
    if not times:
        raise MediaReadError(f"video {video} decoded to no frames")
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


def video_frame_paths(
    video: str | Path, folder: str | Path, root: str | Path, extract: bool = True, quality: int = 95
) -> tuple[dict[int, str], np.ndarray | None]:
    """The frames of one video as ``({1-based frame number: manifest path}, times or None)``.

    With ``extract`` the video is decoded into ``folder`` on first use (:func:`extract_frames`;
    a completed folder is reused even if the video has since been removed). Without it,
    ``folder`` must already hold numbered images (:func:`list_frame_files`); their times are
    known only if a ``frames.json`` is present. Paths are relative to ``root`` when ``folder``
    lies inside it (the manifest convention), absolute otherwise. Raises
    :class:`~affect.io.MediaReadError` when neither a decodable video nor the frames exist.
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
            raise MediaReadError(f"no extracted frames (<number>.jpg|png) in {folder}", status="not_found")
        index = read_frame_index(folder)
    folder_abs, root_abs = folder.resolve(), root.resolve()
    prefix = folder_abs.relative_to(root_abs) if folder_abs.is_relative_to(root_abs) else folder_abs
    paths = {k: (prefix / name).as_posix() for k, name in names.items()}
    return paths, (index.times if index is not None else None)

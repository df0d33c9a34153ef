"""The one PyAV encoder: uint8 RGB frames (and optionally mono audio) -> a video file.

``h264`` (libx264) by default, ``mpeg4`` for ``.avi``; ``yuv420p``; both encoders ship in PyAV's
bundled FFmpeg. :class:`VideoWriter` takes frames one at a time (the annotated video of
``affect predict`` is written while the source is decoded); :func:`write_video` encodes a whole
array (test fixtures, demos). ``rotation`` stores a display matrix (counter-clockwise degrees, as
``VideoReader.rotation`` reads it back) without touching the pixels, as a phone does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class VideoWriter:
    """Encode frames into ``path`` (use as a context manager; :meth:`close` flushes).

    The frame size is fixed by the first frame, cropped to even sides (yuv420p); later frames
    are cropped the same way and must have that size. ``audio_rate``: add a mono AAC stream at that
    sample rate, fed with :meth:`write_audio` after the first frame.
    """

    def __init__(
        self, path: str | Path, fps: float = 25, codec: str | None = None, audio_rate: int | None = None,
        rotation: int = 0, hflip: bool = False,
    ) -> None:  # fmt: skip
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.codec = codec or ("mpeg4" if self.path.suffix.lower() == ".avi" else "h264")
        self.fps, self.rotation, self.hflip = fps, rotation, hflip
        self._container = av.open(str(self.path), mode="w")
        self._video = None
        self._audio = None
        self._audio_pts = 0
        if audio_rate:
            self._audio = self._container.add_stream("aac", rate=int(audio_rate))
            self._audio.layout = "mono"

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, rgb: np.ndarray) -> None:
        """Encode one uint8 RGB frame ``[H, W, 3]``."""
        import av

        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"a frame must be uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        if self._video is None:
            self._video = s = self._container.add_stream(self.codec, rate=int(round(self.fps)))
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            if self.codec == "mpeg4":
                s.bit_rate = 4_000_000
            if self.rotation or self.hflip:
                s.set_display_rotation(self.rotation, hflip=self.hflip)
        elif (w, h) != (self._video.width, self._video.height):
            raise ValueError(f"frame size {w}x{h} differs from the first frame's {self._video.width}x{self._video.height}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        for packet in self._video.encode(frame):
            self._container.mux(packet)

    def write_audio(self, samples: np.ndarray, chunk: int = 1024) -> None:
        """Encode mono float samples in [-1, 1] (after at least one video frame)."""
        import av

        if self._audio is None:
            raise ValueError("this writer has no audio stream (give audio_rate)")
        rate = self._audio.rate
        for start in range(0, len(samples), chunk):
            block = np.ascontiguousarray(samples[start : start + chunk], dtype=np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, self._audio_pts
            self._audio_pts += block.shape[1]
            for packet in self._audio.encode(frame):
                self._container.mux(packet)

    def close(self) -> None:
        try:
            for stream in (self._video, self._audio):
                if stream is not None:
                    for packet in stream.encode():
                        self._container.mux(packet)
        finally:
            self._container.close()


def write_video(
    path: str | Path, frames: np.ndarray, fps: int = 25, codec: str | None = None,
    audio: np.ndarray | None = None, sample_rate: int = 44_100, rotation: int = 0, hflip: bool = False,
) -> Path:  # fmt: skip
    """Encode uint8 frames ``[T, H, W, 3]`` (H, W even) into ``path``, plus mono ``audio`` if given."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {frames.shape[1]}x{frames.shape[2]}")
    with VideoWriter(path, fps, codec, sample_rate if audio is not None else None, rotation, hflip) as writer:
        for image in frames:
            writer.write(image)
        if audio is not None:
            writer.write_audio(np.asarray(audio))
    return Path(path)


def loop_video(src: str | Path, dest: str | Path, seconds: float, audio: bool = False) -> int:
    """``src``'s video stream repeated (packets copied, not re-encoded; timestamps shifted) into ``dest``
    until it lasts at least ``seconds``; returns the frame count (long test videos from a real clip).
    ``audio``: copy its first audio stream too, each repeat shifted by the video's span (so sound and
    picture stay in step), or later where the audio runs longer (its timestamps must increase)."""
    import av

    frames = 0
    with av.open(str(dest), "w") as out:
        offset = 0  # in the video's time base
        streams: dict[str, object] = {}
        ends: dict[str, int] = {}  # audio: the end of the last packet written (output time base)
        while True:
            with av.open(str(src)) as inp:
                s_in = inp.streams.video[0]
                a_in = inp.streams.audio[0] if audio and inp.streams.audio else None
                if not streams:
                    streams["video"] = out.add_stream_from_template(s_in)
                    if a_in is not None:
                        streams["audio"] = out.add_stream_from_template(a_in)
                    rate = float(s_in.average_rate)
                span, shifts = 0, {"video": offset}
                for packet in inp.demux(*[s for s in (s_in, a_in) if s is not None]):
                    if packet.dts is None:
                        continue
                    kind = packet.stream.type
                    if kind not in shifts:  # the audio's first packet of this repeat
                        shifts[kind] = max(round(offset * s_in.time_base / packet.time_base), ends.get(kind, 0) - packet.dts)
                    if kind == "video":
                        span = max(span, packet.pts + (packet.duration or 0))
                        frames += 1
                    packet.pts += shifts[kind]
                    packet.dts += shifts[kind]
                    ends[kind] = packet.dts + (packet.duration or 0)
                    packet.stream = streams[kind]
                    out.mux(packet)
                offset += span
            if frames >= seconds * rate:
                return frames

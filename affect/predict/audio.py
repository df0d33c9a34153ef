"""The audio stream of A/V models in ``affect predict``: one spectrogram image per used video frame.

A/V-MT-VGG-GRU (paper Sec. VI-A.3) reads ``batch["audio"]`` beside the face windows: one
log-spectrogram image per video frame, as ``affect prepare --audio`` stores them for training. The
images are :mod:`affect.data.audio`'s (spectrogram over the presentation times of *every* decoded
frame -> ``to_uint8``), so the image of frame ``k`` is the store's image of frame ``k``, whatever
``frame_stride`` keeps; only the frames that have a face get one (uint8 ``[1, S, S]`` per frame,
``S`` = the model's spectrogram side, its ``input_spec.audio_size``).

They are made piece by piece as the video is read (:class:`InputAudio`, on
:mod:`affect.data.audio_windows`): the video reader feeds every frame's time to a
:class:`~affect.data.audio_windows.FrameClock`, and after each detection batch the batch's faces
get the images of their frames from a :class:`~affect.data.audio_windows.SpectrogramWindows`, which
decodes the audio stream once, in order, and holds only the samples and columns of the current
batch's span plus ``audio_context_s`` — memory does not grow with the video (docs/predict_audio.md).

Inputs without audio: a video without an audio stream (or with one that does not decode: from the
batch where decoding fails, the faces before it keep their images) and every image. Such an input ends with status ``no_audio`` (counted and named in the summary; the reason in
its detail) and, by ``missing_audio``:

- ``"skip"`` (default): its faces keep their rows (box, points, track) with empty predictions — the
  model is not run on faces it would see without their sound;
- ``"silence"``: the model runs on silent spectrograms (all -1, uint8 0: what ``affect prepare
  --audio`` stores for rows without an audio source, counted there as ``audio_no_source``), for a
  model trained with such rows.
"""

from __future__ import annotations

import numpy as np

from affect.data.audio import to_uint8
from affect.data.audio_windows import FrameClock, SpectrogramWindows

__all__ = ["MISSING_AUDIO", "InputAudio"]

#: What an input without audio gets (see the module docstring).
MISSING_AUDIO = ("skip", "silence")


class InputAudio:
    """The spectrogram images of one input's faces (``kind``: "video" or "image"), piece by piece.

    Feed :attr:`clock` every decoded frame's time (the ``times`` sink of the video reader), call
    :meth:`attach` with each batch's new rows once the frame after the batch is decoded (or the clock
    has ended), and :meth:`finish` when the input is done. A video whose audio stream is missing or
    fails to decode (then from that batch on) gets status ``no_audio`` and, by ``opts.missing_audio``,
    no image for those faces (``spec = -1``) or a silent one.
    """

    def __init__(self, path: str, kind: str, opts) -> None:
        self.path, self.opts = path, opts
        self.clock = FrameClock()
        self.problem = "" if kind == "video" else "an image has no audio track"
        self.windows: SpectrogramWindows | None = None
        self.without = 0  # faces that got no audio

    def attach(self, rows: list[dict], table) -> None:
        """Point each face row among ``rows`` (appended to ``table``) at its frame's image
        (``row["spec"]``, an index into ``table.audio``), appending the images to ``table.audio``."""
        faces = [r for r in rows if r["crop"] >= 0]
        for r in rows:
            r["spec"] = -1
        if not faces:
            self._forget(rows)
            return
        if not self.problem:
            try:
                if self.windows is None:
                    size = self.opts.audio_size
                    self.windows = SpectrogramWindows(self.path, size, size, self.opts.audio_context_s)
                frames = sorted({r["frame"] for r in faces})
                images = self.windows.images(self.clock.mids(frames))
            except ValueError as e:  # MediaReadError: no audio stream, none decoded, or unreadable
                self.problem = str(e)
                self.close()
            else:
                index = {k: len(table.audio) + i for i, k in enumerate(frames)}
                table.audio.extend(to_uint8(images))
                for r in faces:
                    r["spec"] = index[r["frame"]]
        if self.problem:
            self._silence(faces, table)
        self._forget(rows)

    def _forget(self, rows: list[dict]) -> None:
        if rows:
            self.clock.forget_before(max(r["frame"] for r in rows) + 1)

    def _silence(self, faces: list[dict], table) -> None:
        self.without += len(faces)
        if self.opts.missing_audio == "silence":
            silence = len(table.audio)
            table.audio.append(np.zeros((1, self.opts.audio_size, self.opts.audio_size), np.uint8))  # uint8 0 == -1
            for r in faces:
                r["spec"] = silence

    def close(self) -> None:
        if self.windows is not None:
            self.windows.close()
            self.windows = None

    def finish(self, report) -> None:
        """Close the audio and, if faces went without it, say so in ``report`` (status ``no_audio``)."""
        self.close()
        if not self.without:
            return
        if self.opts.missing_audio == "silence":
            what = f"{self.problem}; the A/V model ran on silence for its {self.without} faces (missing_audio: silence)"
        else:
            what = (f"{self.problem}; the A/V model was not run on its {self.without} faces (rows kept, predictions "
                    "empty; --data.init_args.missing_audio silence runs it on silence)")  # fmt: skip
        if report.status == "ok":
            report.status = "no_audio"
        report.detail = f"{report.detail}; {what}" if report.detail else what

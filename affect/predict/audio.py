"""The audio stream of A/V models in ``affect predict``: one spectrogram image per used video frame.

A/V-MT-VGG-GRU (paper Sec. VI-A.3) reads ``batch["audio"]`` beside the face windows: one
log-spectrogram image per video frame, as ``affect prepare --audio`` stores them for training. The
images are made by :mod:`affect.data.audio` itself (``load_audio`` -> ``spectrogram_frames`` over the
presentation times of *every* decoded frame -> ``to_uint8``), so the image of frame ``k`` is the
store's image of frame ``k``, whatever ``frame_stride`` keeps; only the frames that have a face are
kept (uint8 ``[1, S, S]`` per frame, ``S`` = the model's spectrogram side, its
``input_spec.audio_size``). Like ``affect prepare
--audio``, ``spectrogram_frames`` makes the float images of every frame of a video at once: about
``3 x frames x S^2 x 4`` bytes for a moment (~2 GB for 10 minutes at 30 fps, S = 96).

Inputs without audio: a video without an audio stream (or with one that does not decode) and every
image. Such an input ends with status ``no_audio`` (counted and named in the summary; the reason in
its detail) and, by ``missing_audio``:

- ``"skip"`` (default): its faces keep their rows (box, points, track) with empty predictions — the
  model is not run on faces it would see without their sound;
- ``"silence"``: the model runs on silent spectrograms (all -1, uint8 0: what ``affect prepare
  --audio`` stores for rows without an audio source, counted there as ``audio_no_source``), for a
  model trained with such rows.
"""

from __future__ import annotations

import numpy as np

from affect.data.audio import SAMPLE_RATE, load_audio, spectrogram_frames, to_uint8
from affect.face import CorruptInputError

__all__ = ["MISSING_AUDIO", "attach_audio"]

#: What an input without audio gets (see the module docstring).
MISSING_AUDIO = ("skip", "silence")


def attach_audio(path: str, kind: str, times: np.ndarray, rows: list[dict], table, report, opts) -> None:
    """Point each face row of one input (``rows``, appended to ``table``) at its frame's spectrogram
    image (``row["spec"]``), appending the images to ``table.audio``; an input without audio gets
    status ``no_audio`` and, by ``opts.missing_audio``, no image (``spec = -1``) or a silent one.

    ``times``: presentation times of every decoded frame of a video (index = frame index).
    """
    faces = [r for r in rows if r["crop"] >= 0]
    for r in rows:
        r["spec"] = -1
    if not faces:
        return
    size = opts.audio_size
    problem = ""
    if kind != "video":
        problem = "an image has no audio track"
    else:
        try:
            wav, start = load_audio(path)
            spec = spectrogram_frames(wav, times, start, SAMPLE_RATE, size, size, opts.audio_context_s)
        except ValueError as e:  # no audio stream, or one that decodes to no samples
            problem = str(e)
        except CorruptInputError as e:
            problem = f"audio unreadable: {e}"
    if problem:
        _no_audio(problem, faces, table, report, opts)
        return
    index: dict[int, int] = {}
    for r in faces:
        k = r["frame"]
        if k not in index:
            index[k] = len(table.audio)
            table.audio.append(to_uint8(spec[k]))
        r["spec"] = index[k]


def _no_audio(problem: str, faces: list[dict], table, report, opts) -> None:
    if opts.missing_audio == "silence":
        silence = len(table.audio)
        table.audio.append(np.zeros((1, opts.audio_size, opts.audio_size), np.uint8))  # uint8 0 == -1 == silence
        for r in faces:
            r["spec"] = silence
        what = f"{problem}; the A/V model ran on silence for its {len(faces)} faces (missing_audio: silence)"
    else:
        what = (f"{problem}; the A/V model was not run on its {len(faces)} faces (rows kept, predictions empty; "
                "--data.init_args.missing_audio silence runs it on silence)")  # fmt: skip
    if report.status == "ok":
        report.status = "no_audio"
    report.detail = f"{report.detail}; {what}" if report.detail else what

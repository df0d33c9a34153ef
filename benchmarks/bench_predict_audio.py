"""The A/V spectrogram images of ``affect predict``: audio held and CPU time, windowed vs the whole video.

Run: ``python benchmarks/bench_predict_audio.py [--video CLIP] [--minutes 1 10] [--size 96] [--window 16]
[--stride 1] [--threads 1] [--no-whole] [--smoke]`` (results: docs/predict_audio.md).

A real clip with sound (default: the GRID sentence ``videos/grid/GRID/bbaf2n.mpg`` of
``$AFFECT_SHARED_DATA``, 25 fps, stereo MP2 at 44.1 kHz; a generated clip when it is absent) is
looped, picture and sound (:func:`affect.io.encode.loop_video`), into videos of ``--minutes``. Each
is read in a fresh process (so that its peak resident memory is its own):

- **windowed** (what ``affect predict`` does, :class:`~affect.data.audio_windows.VideoWindows`): the
  video read once, the images of every ``--stride``-th frame made in windows of ``--window`` frames
  (the detection batch): peak audio samples, spectrogram columns and frame times held, samples
  decoded, CPU time of the images and of the whole process, peak RSS;
- **whole** (what it did before, and what ``affect prepare --audio`` still does per video): the whole
  audio (:func:`affect.io.read_audio`) and the images of every frame at once
  (:func:`~affect.data.audio.spectrogram_frames`): samples held, CPU time, peak RSS;
- **check** (the shortest video): both, and the largest difference between their images.
CPU time is process CPU time (the machine may be shared; wall time would measure the neighbours),
with ``--threads`` torch threads (1 by default: on a loaded machine idle OpenMP threads spin and
their spinning counts as CPU time, ten times the work itself for these small tensors).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from affect.data.audio import SAMPLE_RATE, spectrogram_frames, to_uint8  # noqa: E402
from affect.data.audio_windows import VideoWindows  # noqa: E402
from affect.io import VideoReader, read_audio, write_video  # noqa: E402
from affect.io.encode import loop_video  # noqa: E402

SHARED = Path(os.environ.get("AFFECT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CLIP = SHARED / "videos" / "grid" / "GRID" / "bbaf2n.mpg"


def windowed(path: str, size: int, window: int, stride: int, keep: bool = False) -> dict:
    images, audio_cpu = {}, 0.0
    with VideoWindows(path, size, size, window=window, stride=stride) as vw:
        for frames in vw:
            start = time.process_time()
            out = vw.images(frames)
            audio_cpu += time.process_time() - start
            if keep:
                images.update(zip(frames, to_uint8(out), strict=True))
    sw = vw.spectrograms
    stats = {"frames": vw.clock.count, "peak_samples": sw.peak_samples, "peak_columns": sw.peak_columns,
             "peak_frame_times": vw.peak_frame_times, "samples_decoded": sw.samples_decoded, "rewinds": sw.rewinds,
             "audio_cpu_s": audio_cpu}  # fmt: skip
    return {**stats, "images": images} if keep else stats


def whole(path: str, size: int, stride: int) -> tuple[dict, np.ndarray]:
    start = time.process_time()
    wav, audio_start = read_audio(path, SAMPLE_RATE)
    with VideoReader(path) as reader:
        times = reader.times()
    images = to_uint8(spectrogram_frames(wav, times, audio_start, SAMPLE_RATE, size, size)[::stride])
    return {"frames": len(times), "samples_held": len(wav), "audio_cpu_s": time.process_time() - start}, images


def child(argv: list[str]) -> int:
    import torch

    mode, path, size, window, stride = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    torch.set_num_threads(int(argv[5]))
    if mode == "windowed":
        result = windowed(path, size, window, stride)
    elif mode == "whole":
        result = whole(path, size, stride)[0]
    else:  # check: both, compared
        w = windowed(path, size, window, stride, keep=True)
        ref = whole(path, size, 1)[1]
        got = w.pop("images")
        diff = [int(np.abs(img.astype(np.int16) - ref[k]).max()) for k, img in got.items()]
        result = {"frames": len(got), "max_uint8_diff": max(diff), "frames_differing": int(np.count_nonzero(diff))}
    result["cpu_s"] = time.process_time()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


def run_child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=CLIP)
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--size", type=int, default=96, help="spectrogram image side (the model's audio_size)")
    p.add_argument("--window", type=int, default=16, help="frames per request (affect predict: detect_batch_size)")
    p.add_argument("--stride", type=int, default=1, help="every k-th frame gets an image (frame_stride)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in the measuring processes")
    p.add_argument("--no-whole", action="store_true", help="skip the whole-video runs")
    p.add_argument("--smoke", action="store_true", help="two 6 s videos, images of 32 px")
    args = p.parse_args(argv)
    if args.smoke:
        args.minutes, args.size = [0.05, 0.1], 32
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = args.video
        if not src.is_file():  # a generated clip with sound when the real one is absent
            rng = np.random.default_rng(0)
            frames = rng.integers(0, 256, (75, 64, 64, 3), dtype=np.uint8)
            sound = (0.3 * rng.uniform(-1, 1, 3 * SAMPLE_RATE)).astype(np.float32)
            src = write_video(tmp / "generated.mp4", frames, fps=25, audio=sound)
        print(f"video: {src.name} looped; images {args.size} px, requests of {args.window} frames, stride "
              f"{args.stride}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        peaks = []
        for i, minutes in enumerate(args.minutes):
            video = tmp / f"looped_{minutes:g}min.mkv"
            n = loop_video(src, video, minutes * 60, audio=True)
            w = run_child("windowed", video, args.size, args.window, args.stride, args.threads)
            peaks.append(w["peak_samples"])
            print(f"{minutes:5g} min ({n} frames) windowed: peak {w['peak_samples']} samples, {w['peak_columns']} "
                  f"columns, {w['peak_frame_times']} frame times held ({w['samples_decoded']} samples decoded); "
                  f"CPU {w['audio_cpu_s']:.1f} s images, {w['cpu_s']:.1f} s process; peak RSS "
                  f"{w['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
            if not args.no_whole:
                h = run_child("whole", video, args.size, args.window, args.stride, args.threads)
                print(f"{minutes:5g} min ({n} frames) whole:    {h['samples_held']} samples held; CPU "
                      f"{h['audio_cpu_s']:.1f} s images, {h['cpu_s']:.1f} s process; peak RSS {h['peak_rss_mb']:.0f} MB",
                      flush=True)  # fmt: skip
            if i == 0:
                c = run_child("check", video, args.size, args.window, args.stride, args.threads)
                print(f"{minutes:5g} min check: windowed vs whole uint8 images over {c['frames']} frames: max "
                      f"difference {c['max_uint8_diff']}, {c['frames_differing']} frames differ", flush=True)  # fmt: skip
            video.unlink()
        if len(peaks) > 1:
            print(f"peak samples held {args.minutes[-1]:g} min vs {args.minutes[0]:g} min: {peaks[-1] - peaks[0]:+d}")
    return 0


if __name__ == "__main__":
    sys.exit(child(sys.argv[2:]) if sys.argv[1:2] == ["--child"] else main())

"""Frames/s of decode + MTCNN detection + 5-point alignment on a real video, batched vs one at a time.

Run: ``python benchmarks/bench_face.py [--video PATH] [--batch-sizes 1 8 32] [--device cpu]``.
Decoding (PyAV) is timed separately and inside the end-to-end number.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from affect.face import FaceDetector, detect_and_align, iter_video_frames  # noqa: E402

DEFAULT_VIDEO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "videos" / "pyfeat" / "single_face.mp4"


def run(video: Path, detector: FaceDetector, batch: int) -> tuple[float, int, int]:
    """End-to-end frames/s: decode the video, detect + align in batches of ``batch`` frames."""
    t = time.perf_counter()
    frames, faces, pending = 0, 0, []
    for _, img in iter_video_frames(video):
        pending.append(img)
        if len(pending) == batch:
            faces += sum(len(f) for f in detect_and_align(pending, detector))
            frames += len(pending)
            pending = []
    if pending:
        faces += sum(len(f) for f in detect_and_align(pending, detector))
        frames += len(pending)
    return frames / (time.perf_counter() - t), frames, faces


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=2, help="runs per batch size (best is reported)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 = what `affect prepare` uses per worker; more threads than "
                        "free cores make MTCNN several times slower)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.video.is_file():
        raise SystemExit(f"video not found: {args.video}")

    t = time.perf_counter()
    n = sum(1 for _ in iter_video_frames(args.video))
    dec = n / (time.perf_counter() - t)
    print(f"video: {args.video.name}, {n} frames; device: {args.device}; torch threads: {torch.get_num_threads()}; "
          f"cpus: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}")
    print(f"decode only:                  {dec:8.1f} frames/s")
    detector = FaceDetector(device=args.device, batch_size=max(args.batch_sizes))
    run(args.video, detector, 1)  # warm-up (lazy init, allocator)
    for b in args.batch_sizes:
        best, frames, faces = max(run(args.video, detector, b) for _ in range(args.repeats))
        label = "one frame at a time" if b == 1 else f"batched ({b} frames)"
        print(f"decode+detect+align {label:22s} {best:8.1f} frames/s  ({faces} faces in {frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

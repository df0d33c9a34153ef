"""Frames/s of face preparation with MTCNN on a GPU, stage by stage (the goal: >= 1,000 frames/s
for 640x360 video on an H100).

Prints one line per measurement:

- ``decode``: PyAV decoding alone, one process, then ``--decode-workers`` processes together
  (each decodes its own copy of the video, as for a corpus of many videos);
- ``detect``: batched MTCNN (``affect.face.FaceDetector``) on ``--device`` over frames already
  decoded into memory (includes the host-to-device copy of each batch), per batch size;
- ``pipeline``: decoding in ``--decode-workers`` DataLoader worker processes, batched MTCNN on the
  device and 5-point alignment to 96x96 in the main process (``detect_and_align``);
- ``prepare``: ``affect prepare`` itself (``prepare_store``, ``--detect``) on a manifest of the
  same frames with ``--prepare-workers`` worker processes, each decoding and running MTCNN on the
  device; wall time from the call to the finished store (includes the workers' start-up).

    python benchmarks/bench_prepare_gpu.py --frames 3000 --batch-sizes 32 64 128 --decode-workers 8
    python benchmarks/bench_prepare_gpu.py --smoke          # CPU, 16 frames: proves the script runs

``--video`` defaults to the shared 640x360 clip (72 frames; ``--frames`` more than that use
copies of it). Without it a synthetic 640x360 clip is written (colour ramps, no faces: detection
cost differs from real footage, and the script says so).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from affect.face import FaceDetector, detect_and_align, iter_video_frames  # noqa: E402
from benchmarks.bench_face import DEFAULT_VIDEO  # noqa: E402


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def video_copies(video: Path, frames: int, folder: Path) -> list[tuple[Path, int]]:
    """``(path, frames to take)`` over enough symlinked copies of ``video`` to make ``frames`` frames."""
    per = sum(1 for _ in iter_video_frames(video))
    out = []
    for j in range(math.ceil(frames / per)):
        link = folder / f"copy{j:04d}{video.suffix}"
        if not link.exists():
            link.symlink_to(video.resolve())
        out.append((link, min(per, frames - j * per)))
    return out


def synthetic_video(folder: Path, n: int = 72) -> Path:
    from affect.io import write_video

    y, x = np.mgrid[0:360, 0:640]
    base = np.stack([x * 255 // 639, y * 255 // 359, (x + y) * 255 // 998], -1).astype(np.uint8)
    frames = np.stack([np.roll(base, 4 * t, axis=1) for t in range(n)])  # smooth colour ramps, moving
    return write_video(folder / "synthetic_640x360.mp4", frames, fps=25)


class DecodedBatches(torch.utils.data.IterableDataset):
    """Batches of RGB frames ``uint8 [B, H, W, 3]``; each DataLoader worker decodes its share of the videos."""

    def __init__(self, videos: list[tuple[Path, int]], batch: int) -> None:
        self.videos, self.batch = videos, batch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        mine = self.videos if info is None else self.videos[info.id :: info.num_workers]
        pending = []
        for path, n in mine:
            for _, img in iter_video_frames(path, indices=range(n)):
                pending.append(img)
                if len(pending) == self.batch:
                    yield torch.from_numpy(np.stack(pending))
                    pending = []
        if pending:
            yield torch.from_numpy(np.stack(pending))


def decode_rate(videos: list[tuple[Path, int]], workers: int) -> float:
    loader = torch.utils.data.DataLoader(DecodedBatches(videos, 32), batch_size=None, num_workers=workers)
    t = time.perf_counter()
    n = sum(len(b) for b in loader)
    return n / (time.perf_counter() - t)


def detect_rate(frames: list[np.ndarray], total: int, detector: FaceDetector, batch: int, device: str) -> tuple[float, int]:
    """MTCNN alone over ``total`` frames cycled from ``frames`` (already in memory), in batches of ``batch``."""
    batches = [[frames[(s + i) % len(frames)] for i in range(min(batch, total - s))] for s in range(0, total, batch)]
    detector.detect(batches[0])  # warm-up: lazy init, cuDNN autotuning, allocator
    sync(device)
    t = time.perf_counter()
    faces = sum(len(f) for b in batches for f in detector.detect(b))
    sync(device)
    return total / (time.perf_counter() - t), faces


def pipeline_rate(videos: list[tuple[Path, int]], detector: FaceDetector, batch: int, workers: int,
                  device: str) -> tuple[float, int, int]:
    loader = torch.utils.data.DataLoader(DecodedBatches(videos, batch), batch_size=None, num_workers=workers,
                                         prefetch_factor=4 if workers else None, persistent_workers=False)
    t = time.perf_counter()
    frames = faces = 0
    for b in loader:
        faces += sum(len(f) for f in detect_and_align(list(b.numpy()), detector))
        frames += len(b)
    sync(device)
    return frames / (time.perf_counter() - t), frames, faces


def prepare_rate(videos: list[tuple[Path, int]], folder: Path, device: str, batch: int, workers: int,
                 shard_size: int) -> tuple[float, dict]:
    import pandas as pd

    from affect.store.writer import PrepareOptions, prepare_store

    rows = [{"path": p.name, "corpus": "bench", "video": p.stem, "frame": f} for p, n in videos for f in range(n)]
    out = Path(tempfile.mkdtemp(dir=folder, prefix="store-"))
    opts = PrepareOptions(detect="always", device=device, batch_size=batch)
    t = time.perf_counter()
    report = prepare_store(pd.DataFrame(rows), folder, out, workers=workers, shard_size=shard_size, options=opts,
                           progress=False)
    return len(rows) / (time.perf_counter() - t), report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    p.add_argument("--frames", type=int, default=2000, help="frames per measurement")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--decode-workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--prepare-workers", type=int, nargs="+", default=[1, 4],
                   help="`affect prepare --workers` values to time (each worker runs MTCNN on --device)")
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--smoke", action="store_true", help="CPU, 16 frames, batch 8, 1 worker: proves the script runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.frames, args.batch_sizes = "cpu", 16, [8]
        args.decode_workers, args.prepare_workers, args.shard_size = 1, [1], 8
    if args.device == "cpu":
        torch.set_num_threads(1)  # what `affect prepare` uses per worker
    torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory(prefix="affect-bench-prepare-") as tmp:
        tmp = Path(tmp)
        video = args.video
        if not video.is_file():
            print(f"note: {video} not found; using a synthetic 640x360 clip without faces "
                  "(detection cost differs from real footage)")
            video = synthetic_video(tmp)
        videos = video_copies(video, args.frames, tmp)
        frames = [img for _, img in iter_video_frames(video, indices=range(min(args.frames, 256)))]
        h, w = frames[0].shape[:2]
        name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
        print(f"video: {video.name} {w}x{h}, {args.frames} frames per measurement; device: {args.device} ({name}); "
              f"torch {torch.__version__}; cpus: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}", flush=True)
        print(f"decode    1 process               {decode_rate(videos, 0):9.1f} frames/s", flush=True)
        if args.decode_workers > 1:
            print(f"decode    {args.decode_workers:2d} worker processes       "
                  f"{decode_rate(videos, args.decode_workers):9.1f} frames/s", flush=True)
        detector = FaceDetector(device=args.device, batch_size=max(args.batch_sizes))
        for b in args.batch_sizes:
            rate, faces = detect_rate(frames, args.frames, detector, b, args.device)
            print(f"detect    batch {b:4d}                {rate:9.1f} frames/s  ({faces} faces)", flush=True)
        for b in args.batch_sizes:
            rate, n, faces = pipeline_rate(videos, detector, b, args.decode_workers, args.device)
            print(f"pipeline  batch {b:4d}, {args.decode_workers:2d} decode workers {rate:9.1f} frames/s  "
                  f"({faces} faces in {n} frames)", flush=True)
        for workers in args.prepare_workers:
            rate, rep = prepare_rate(videos, tmp, args.device, max(args.batch_sizes), workers, args.shard_size)
            print(f"prepare   batch {max(args.batch_sizes):4d}, --workers {workers:2d}      {rate:9.1f} frames/s  "
                  f"({rep['faces']} faces in {rep['frames_in']} frames; includes worker start-up)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

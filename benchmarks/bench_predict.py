"""End-to-end ``affect predict`` frames/s next to the MTCNN detector alone, on the same decoded frames.

Run: ``python benchmarks/bench_predict.py [--video PATH] [--loops 4] [--threads 2] [--ckpt CKPT]``.

1. The video (default ``../shared/data/videos/pyfeat/single_face.mp4``, 640x360) is looped ``--loops``
   times into a temporary MP4 (not timed).
2. **detector only**: facenet-pytorch MTCNN (``affect.face.FaceDetector``) batched by 16 on the
   frames decoded beforehand, with each option's minimum face size.
3. **end to end**: ``affect.predict.run_predict`` through the real CLI (decode, detect, align, track,
   the model, CSV writing; no plots), timed from the first decoded frame to the written CSV (the
   datamodule's and the writer's own clocks, so CLI start-up and model building are not counted; the
   whole call is printed too).
4. For each speed option (``detect_every`` k: MTCNN on every k-th frame, the tracker carrying boxes
   in between; ``min_face_fraction`` f: no face smaller than f x the frame's short side) its accuracy
   cost against per-frame detection: frames whose face is lost, the mean box IoU with the per-frame
   box, and the mean absolute change of the expression probabilities.

The model is ``--ckpt`` or, by default, an untrained FaceBehaviorNet with the FER2013 recipe's shape
(``test_resnet`` backbone, 96x96, EXPR head): its cost per face is what matters here, not its accuracy.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from affect.face import FaceDetector, iter_video_frames  # noqa: E402
from affect.io import write_video  # noqa: E402
from affect.predict import run_predict  # noqa: E402
from affect.predict.tracks import box_iou  # noqa: E402

SHARED = Path(os.environ.get("AFFECT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DEFAULT_VIDEO = SHARED / "videos" / "pyfeat" / "single_face.mp4"
OPTIONS = {  # name: (detect_every, min_face_fraction)
    "per-frame detection": (1, 0.0),
    "min face 0.2 x short side": (1, 0.2),
    "detect every 3rd frame": (3, 0.0),
    "every 3rd + min face 0.2": (3, 0.2),
}


def default_checkpoint(folder: Path) -> Path:
    """An untrained FaceBehaviorNet shaped like experiments/fer2013.yaml, saved as a Lightning checkpoint."""
    import lightning as L

    from affect.models.facebehaviornet import FaceBehaviorNetModule

    module = FaceBehaviorNetModule(backbone="test_resnet", hidden=256, image_size=96, tasks=["expr"])
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    module.hparams["_class_path"] = f"{type(module).__module__}.{type(module).__name__}"  # as LightningCLI saves it
    trainer.strategy.connect(module)
    path = folder / "fer2013_shape.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    return path


def detector_only(frames: list[np.ndarray], fraction: float, batch: int = 16) -> float:
    min_face = max(20, int(fraction * min(frames[0].shape[:2])))
    det = FaceDetector(device="cpu", min_face_size=min_face, batch_size=batch)
    det.detect(frames[:batch])  # warm-up
    t = time.perf_counter()
    for s in range(0, len(frames), batch):
        det.detect(frames[s : s + batch])
    return len(frames) / (time.perf_counter() - t)


def accuracy_cost(base: pd.DataFrame, other: pd.DataFrame) -> tuple[int, float, float]:
    """(frames with a face per-frame but none here, mean IoU of the largest face's box, mean |d p(expr)|)."""
    pick = lambda d: d[d["face_detected"] == 1].sort_values("box_w").groupby("frame").tail(1).set_index("frame")  # noqa: E731
    a, b = pick(base), pick(other)
    lost = len(set(a.index) - set(b.index))
    common = sorted(set(a.index) & set(b.index))
    xyxy = lambda d: np.c_[d["box_x"], d["box_y"], d["box_x"] + d["box_w"], d["box_y"] + d["box_h"]]  # noqa: E731
    ious = [box_iou(xyxy(a.loc[[k]]), xyxy(b.loc[[k]]))[0, 0] for k in common]
    classes = [c for c in ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise") if c in a]
    dp = float(np.abs(a.loc[common, classes].to_numpy() - b.loc[common, classes].to_numpy()).mean()) if classes else float("nan")
    return lost, float(np.mean(ious)) if ious else float("nan"), dp


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    p.add_argument("--loops", type=int, default=4, help="times the clip is repeated (a longer run amortises start-up)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads, for both measurements")
    p.add_argument("--ckpt", type=Path, default=None)
    p.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    args = p.parse_args(argv)
    if not args.video.is_file():
        raise SystemExit(f"video not found: {args.video}")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames = [f for _, f in iter_video_frames(args.video)] * args.loops
        looped = write_video(tmp / "looped.mp4", np.stack(frames), fps=30)
        t = time.perf_counter()
        n = sum(1 for _ in iter_video_frames(looped))
        decode = n / (time.perf_counter() - t)
        ckpt = args.ckpt or default_checkpoint(tmp)
        print(f"video: {args.video.name} x{args.loops} = {n} frames, {frames[0].shape[1]}x{frames[0].shape[0]}; "
              f"torch threads: {torch.get_num_threads()}; cpus: {os.cpu_count()}; "
              f"load average: {os.getloadavg()[0]:.1f} (other jobs share this machine)")  # fmt: skip
        print(f"decode only: {decode:.1f} frames/s; model: {ckpt.name}")
        results = {}
        for name in args.options:
            every, fraction = OPTIONS[name]
            det = detector_only(frames, fraction)
            out = tmp / name.replace(" ", "_")
            t = time.perf_counter()
            summary = run_predict(ckpt, looped, out, [
                "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
                "--data.init_args.progress", "false", "--data.init_args.detect_every", str(every),
                "--data.init_args.min_face_fraction", str(fraction),
                "--trainer.callbacks.init_args.plots", "false"])  # fmt: skip
            whole = time.perf_counter() - t
            run_s = summary["timing"]["extract_s"] + summary["timing"]["predict_write_s"]
            e2e = summary["frames"] / run_s
            df = pd.read_csv(out / "predictions" / "predictions.csv")
            results[name] = df
            cost = accuracy_cost(results[args.options[0]], df) if name != args.options[0] else (0, 1.0, 0.0)
            print(f"{name:28s} detector only {det:6.1f} frames/s | end to end {e2e:6.1f} frames/s "
                  f"(ratio {e2e / det:.2f}; whole CLI call incl. start-up {summary['frames'] / whole:.1f}) | "
                  f"faces {summary['faces']}/{summary['frames']} frames; vs per-frame: lost {cost[0]}, "
                  f"box IoU {cost[1]:.3f}, mean |dp(expr)| {cost[2]:.2e}")  # fmt: skip
    return 0


# ---------------------------------------------------------------------- --memory
# ``python benchmarks/bench_predict.py --memory [--minutes 1 10] [--video PATH] [--detect-every 1]``: peak
# resident memory of ``affect predict`` (a fresh process per video, the CLI's default outputs) on videos
# of each length made by looping the real clip (its packets copied, not re-encoded); rows and crops are
# streamed to disk as they are predicted, so the peak should not grow with the video's length.


def loop_video(src: Path, dest: Path, seconds: float) -> int:
    """``src``'s video stream repeated (packets copied, timestamps shifted) to at least ``seconds``;
    returns the frame count."""
    import av

    frames = 0
    with av.open(str(dest), "w") as out:
        offset = 0
        stream = None
        while True:
            with av.open(str(src)) as inp:
                s_in = inp.streams.video[0]
                if stream is None:
                    stream = out.add_stream_from_template(s_in)
                    rate = float(s_in.average_rate)
                span = 0
                for packet in inp.demux(s_in):
                    if packet.dts is None:
                        continue
                    span = max(span, packet.pts + (packet.duration or 0))
                    packet.pts += offset
                    packet.dts += offset
                    packet.stream = stream
                    out.mux(packet)
                    frames += 1
                offset += span
            if frames >= seconds * rate:
                return frames


def memory_child(argv: list[str]) -> int:
    """In a fresh process: ``affect predict`` on one video; prints peak RSS and CPU seconds as JSON."""
    import json
    import resource

    video, ckpt, out, every = argv
    torch.set_num_threads(1)
    summary = run_predict(Path(ckpt), Path(video), Path(out), [
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false",
        "--data.init_args.detect_every", every])  # fmt: skip
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
                      "frames": summary["frames"], "faces": summary["faces"]}))  # fmt: skip
    return 0


def memory_main(argv: list[str]) -> int:
    import json
    import subprocess

    p = argparse.ArgumentParser(description="peak RSS of affect predict on looped videos of growing length")
    p.add_argument("--memory", action="store_true")
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--detect-every", type=int, default=1, help="MTCNN every k-th frame (rows and crops: every frame)")
    p.add_argument("--ckpt", type=Path, default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = args.video
        if not src.is_file():  # a generated clip when the real one is absent
            from affect.data.synthetic import face_sequence

            frames, _, _ = face_sequence(np.random.default_rng(0), 90, size=256, fps=30)
            src = write_video(tmp / "generated.mp4", np.asarray(frames), fps=30)
        ckpt = args.ckpt or default_checkpoint(tmp)
        print(f"video: {src.name}; model: {ckpt.name}; detect_every {args.detect_every}; "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        results = []
        for minutes in args.minutes:
            video = tmp / f"looped_{minutes:g}min.mp4"
            n = loop_video(src, video, minutes * 60)
            child = subprocess.run([sys.executable, __file__, "--memory-child", str(video), str(ckpt),
                                    str(tmp / f"out_{minutes:g}"), str(args.detect_every)],
                                   capture_output=True, text=True)  # fmt: skip
            if child.returncode:
                print(child.stderr[-3000:])
                return child.returncode
            r = json.loads(child.stdout.strip().splitlines()[-1])
            results.append(r["peak_rss_mb"])
            print(f"{minutes:5g} min ({n} frames, {r['faces']} faces): peak RSS {r['peak_rss_mb']:7.0f} MB, "
                  f"CPU {r['cpu_s']:7.0f} s", flush=True)  # fmt: skip
            video.unlink()
        if len(results) > 1:
            growth = results[-1] / results[0] - 1
            print(f"peak RSS {args.minutes[-1]:g} min vs {args.minutes[0]:g} min: {growth:+.1%} "
                  f"(goal: within 10 %, under 2048 MB: {'met' if abs(growth) <= 0.1 and max(results) < 2048 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory-child"]:
        sys.exit(memory_child(sys.argv[2:]))
    sys.exit(memory_main(sys.argv[1:]) if "--memory" in sys.argv[1:] else main())

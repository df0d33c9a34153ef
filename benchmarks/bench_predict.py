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


if __name__ == "__main__":
    sys.exit(main())

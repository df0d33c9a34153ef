"""``affect predict``'s speed settings: frames/s end to end next to their accuracy cost against per-frame detection.

Run: ``python benchmarks/bench_predict.py [--ckpt CKPT | --default-model | --untrained] [--loops 4] [--grid 3] [--clips NAME ...]
[--no-photos] [--no-detector] [--threads 2] [--settings NAME ...] [--refine-passes N] [--smoke]`` (results: docs/predict_speed.md);
``--memory [--minutes 1 10]``: peak resident memory on looped videos (end of this file; docs/predict_outputs.md).

1. **Inputs** (real data from ``../shared/data``, ``$AFFECT_SHARED_DATA``): the videos
   ``videos/pyfeat/single_face.mp4`` (640x360) looped ``--loops`` times into one MP4,
   ``noface_face.mov`` and ``face_noface.mov`` (960x540, a face that appears / disappears) and the
   first ``--grid`` GRID clips (360x288); the photos of ``faces/`` (one run per distinct photo setting:
   ``detect_every`` does not apply to photos).
2. **Model**: ``--ckpt``, else a small FaceBehaviorNet (the FER2013 recipe's shape: ``test_resnet``,
   48x48, EXPR, test-time flip) trained here for ``--train-steps`` steps on ``../shared/data/fer2013``
   (cached under ``~/.cache/affect``), so that the probabilities compared are those of a model that
   has learnt expressions, not of random weights.
3. **Each setting** (``detect_every`` k: MTCNN on every k-th frame, tracked boxes carried in between;
   ``min_face_fraction`` f: no face smaller than f x the frame's short side; ``detect_max_side`` s:
   detection on a copy downscaled to s px long side) runs ``affect.predict.run_predict`` through the
   real CLI (decode, detect, align, track, the model, the CSVs; no plots). Every setting names all
   three options, so the table does not move when the defaults do; ``defaults`` runs with none given.
4. **Speed**: frames/s from the first decoded frame to the written CSVs (*steady*), and start-up (CLI,
   model load, detector build) apart, each as wall time and as process CPU time. On a machine shared
   with other jobs wall time measures the neighbours; the CPU figure, ``frames / (cpu_s / threads)``,
   estimates a quiet ``--threads``-core machine when the threads are kept busy (the ``cpu/wall``
   column shows how busy they were).
5. **Cost** against per-frame detection at full settings, faces matched per input and frame by box
   IoU (>= 0.3, greedy): faces lost (% of the reference's faces), faces added (e.g. a carried box on a
   frame whose face has left), mean box IoU of matched faces, and the max / 99th percentile / mean of
   |difference| of the 7 expression probabilities per matched face.
6. **Detector only**: MTCNN on the decoded 640x360 frames, batched, at its pyramid factor 0.709 or a
   coarser one, on full frames or copies downscaled to 480 px (faster detector paths).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from affect.face import FaceDetector, iter_video_frames  # noqa: E402
from affect.io import write_video  # noqa: E402
from affect.io.encode import loop_video  # noqa: E402
from affect.labels import EXPR_CLASSES  # noqa: E402
from affect.predict import MediaDataModule, run_predict  # noqa: E402
from affect.predict.tracks import box_iou  # noqa: E402

SHARED = Path(os.environ.get("AFFECT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
VIDEOS = SHARED / "videos"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "affect"
#: per-frame detection at full settings: the reference every setting is compared with
#: the clip ``--memory`` loops
DEFAULT_VIDEO = VIDEOS / "pyfeat" / "single_face.mp4"
REFERENCE = {"detect_every": 1, "min_face_fraction": 0.0, "detect_max_side": 1920}
SETTINGS: dict[str, dict | None] = {  # name: the options that differ from REFERENCE (None: the defaults)
    "per-frame": {},
    "min face 0.1": {"min_face_fraction": 0.1},
    "min face 0.15": {"min_face_fraction": 0.15},
    "min face 0.2": {"min_face_fraction": 0.2},
    "every 2": {"detect_every": 2},
    "every 3": {"detect_every": 3},
    "every 5": {"detect_every": 5},
    "every 2 + min 0.15": {"detect_every": 2, "min_face_fraction": 0.15},
    "every 3 + min 0.1": {"detect_every": 3, "min_face_fraction": 0.1},
    "every 3 + min 0.15": {"detect_every": 3, "min_face_fraction": 0.15},
    "every 3 + min 0.2": {"detect_every": 3, "min_face_fraction": 0.2},
    "every 5 + min 0.2": {"detect_every": 5, "min_face_fraction": 0.2},
    "side 640": {"detect_max_side": 640},
    "side 640 + every 3 + min 0.15": {"detect_every": 3, "min_face_fraction": 0.15, "detect_max_side": 640},
    "defaults": None,
}
CLIPS = ("noface_face.mov", "face_noface.mov")  # 960x540: a face that appears / leaves mid-clip
PHOTO_KEYS = ("min_face_fraction", "detect_max_side")  # the options that change what photos give
MATCH_IOU = 0.3


def default_checkpoint(folder: Path) -> Path:
    """An untrained FaceBehaviorNet shaped like experiments/fer2013.yaml, saved as a Lightning checkpoint."""
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    return _save(FaceBehaviorNetModule(**_recipe()), folder / "fer2013_shape.ckpt")


def _recipe() -> dict:
    return {"backbone": "test_resnet", "hidden": 256, "dropout": 0.2, "image_size": 48, "tasks": ["expr"],
            "lr": 0.002, "test_time_flip": True}  # fmt: skip


def _save(module, path: Path, trainer=None) -> Path:
    import lightning as L

    if trainer is None:
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.strategy.connect(module)
    module.hparams["_class_path"] = f"{type(module).__module__}.{type(module).__name__}"  # as LightningCLI saves it
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path, weights_only=False)
    return path


def trained_checkpoint(steps: int, root: Path = SHARED / "fer2013") -> Path:
    """The FER2013 recipe's model trained ``steps`` steps (batch 128, flips + shifts) on ``root``; cached."""
    path = CACHE / f"bench_predict_fer2013_{steps}steps.ckpt"
    if path.is_file():
        return path
    if not (root / "train").is_dir():
        raise SystemExit(f"no FER2013 training folder at {root / 'train'}: pass --ckpt CKPT")
    import lightning as L

    from affect.data.corpora.fer2013 import Fer2013DataModule
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    L.seed_everything(0, verbose=False)
    dm = Fer2013DataModule(root=str(root), batch_size=128, image_size=48, num_workers=0,
                           augment={"flip": 0.5, "max_shift": 0.06, "erase": 0.0})  # fmt: skip
    module = FaceBehaviorNetModule(**_recipe())
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    t = time.perf_counter()
    trainer.fit(module, dm)
    print(f"trained the FER2013 recipe's model for {steps} steps in {time.perf_counter() - t:.0f} s -> {path}")
    return _save(module, path, trainer)


@dataclass
class Run:
    """One ``run_predict`` call: its predictions, frames, and steady / start-up wall and CPU seconds."""

    df: pd.DataFrame
    frames: int
    wall_s: float
    cpu_s: float
    start_wall_s: float
    start_cpu_s: float


def predict(ckpt: Path | None, inputs: list[Path], out: Path, options: dict | None, refine: int | None = None) -> Run:
    """``affect predict`` via the real CLI; the clocks split where the face stream (detector, extraction) starts."""
    marks: list[tuple[float, float]] = []
    extract = MediaDataModule.face_stream

    def timed(self, *a, **k):
        marks.append((time.perf_counter(), time.process_time()))
        return extract(self, *a, **k)

    args = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress",
            "false", "--trainer.callbacks.init_args.plots", "false"]  # fmt: skip
    for key, value in {**(options or {}), **({} if refine is None else {"refine_passes": refine})}.items():
        args += [f"--data.init_args.{key}", str(value)]
    MediaDataModule.face_stream = timed
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        summary = run_predict(ckpt, [str(i) for i in inputs], out, args)
        w1, c1 = time.perf_counter(), time.process_time()
    finally:
        MediaDataModule.face_stream = extract
    (wm, cm), = marks  # fmt: skip
    df = pd.read_csv(out / "predictions" / "predictions.csv")
    return Run(df, int(summary["frames"]), w1 - wm, c1 - cm, wm - w0, cm - c0)


@dataclass
class Cost:
    faces: int
    lost: int
    added: int
    iou: float
    dp_max: float
    dp_p99: float
    dp_mean: float


def accuracy_cost(ref: pd.DataFrame, other: pd.DataFrame, match_iou: float = MATCH_IOU) -> Cost:
    """Faces of ``other`` matched to the reference's per input and frame (greedy by box IoU >= ``match_iou``)."""
    classes = [c for c in EXPR_CLASSES if c in ref.columns]
    boxes = lambda d: np.c_[d["box_x"], d["box_y"], d["box_x"] + d["box_w"], d["box_y"] + d["box_h"]]  # noqa: E731
    a = ref[ref["face_detected"] == 1]
    b = other[other["face_detected"] == 1]
    groups_b = dict(iter(b.groupby(["input", "frame"])))
    lost, ious, dps, matched_b = 0, [], [], 0
    for key, fa in a.groupby(["input", "frame"]):
        fb = groups_b.get(key)
        if fb is None:
            lost += len(fa)
            continue
        iou = box_iou(boxes(fa), boxes(fb))
        used_a, used_b = set(), set()
        for i, j in zip(*np.unravel_index(np.argsort(-iou, axis=None), iou.shape), strict=True):
            if iou[i, j] < match_iou:
                break
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            ious.append(iou[i, j])
            if classes:
                dps.append(np.abs(fa.iloc[i][classes].to_numpy(float) - fb.iloc[j][classes].to_numpy(float)).max())
        lost += len(fa) - len(used_a)
        matched_b += len(used_b)
    dp = np.asarray(dps) if dps else np.full(1, np.nan)
    return Cost(len(a), lost, len(b) - matched_b, float(np.mean(ious)) if ious else float("nan"),
                float(dp.max()), float(np.percentile(dp, 99)), float(dp.mean()))  # fmt: skip


def detector_only(frames: list[np.ndarray], threads: int) -> list[str]:
    """MTCNN alone on ``frames`` (batches of 16): pyramid factor and detection size; frames/s by CPU time."""
    import cv2

    lines, ref = [], None
    for factor in (0.709, 0.6):
        for side in (None, 480):
            det = FaceDetector(device="cpu", min_face_size=20, batch_size=16)
            det.mtcnn.factor = factor
            h, w = frames[0].shape[:2]
            s = 1.0 if side is None or side >= max(h, w) else side / max(h, w)
            seen = frames if s == 1.0 else [cv2.resize(f, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
                                             for f in frames]  # fmt: skip
            det.detect(seen[:16])  # warm-up
            w0, c0 = time.perf_counter(), time.process_time()
            found = [f for k in range(0, len(seen), 16) for f in det.detect(seen[k : k + 16])]
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            boxes = [np.stack([f.box / s for f in fs]) if fs else np.zeros((0, 4)) for fs in found]
            ref = ref or boxes
            iou = [box_iou(r, b).max() if len(r) and len(b) else 0.0 for r, b in zip(ref, boxes, strict=True) if len(r)]
            lines.append(f"  factor {factor:.3f}, detected at {side or max(h, w):4d} px: {len(frames) / wall:6.1f} "
                         f"frames/s wall, {len(frames) / (cpu / threads):6.1f} by CPU | faces "
                         f"{sum(map(len, found))}, box IoU vs factor 0.709 full size {np.mean(iou):.3f}")  # fmt: skip
    return lines


def videos(tmp: Path, loops: int, grid: int, smoke: bool, clips: list[str]) -> list[Path]:
    """The benchmark's videos (see the module docstring); ``smoke``: 12 frames of single_face.mp4."""
    single = VIDEOS / "pyfeat" / "single_face.mp4"
    if not single.is_file():
        raise SystemExit(f"video not found: {single} (set AFFECT_SHARED_DATA to the shared data folder)")
    frames = [f for _, f in iter_video_frames(single)]
    if smoke:
        return [write_video(tmp / "single_face_12.mp4", np.stack(frames[:12]), fps=30)]
    out = [write_video(tmp / f"single_face_x{loops}.mp4", np.stack(frames * loops), fps=30)]
    out += [p for p in (VIDEOS / "pyfeat" / c for c in clips) if p.is_file()]
    return out + sorted((VIDEOS / "grid" / "GRID").glob("*.mpg"))[:grid]


def photos(smoke: bool) -> list[Path]:
    folder = SHARED / "faces"
    if smoke:
        return [p for p in [folder / "pyfeat" / "single_face.jpg"] if p.is_file()]
    return [folder] if folder.is_dir() else []


def row(name: str, run: Run, ref_run: Run, cost: Cost, photo: Cost | None, threads: int) -> str:
    cpu_fps = run.frames / (run.cpu_s / threads)
    photo_txt = f"{photo.lost}/{photo.faces}" if photo else "-"
    return (f"{name:30s} {run.frames / run.wall_s:7.1f} {cpu_fps:7.1f} {run.cpu_s / run.wall_s:5.2f} "
            f"{run.start_wall_s:6.1f} {run.start_cpu_s:6.1f} | {100 * cost.lost / max(cost.faces, 1):5.2f} "
            f"{cost.added:5d} {cost.iou:6.3f} {cost.dp_max:6.3f} {cost.dp_p99:6.3f} {cost.dp_mean:7.4f} | "
            f"{photo_txt:>7s}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", type=Path, default=None, help="a trained checkpoint (default: train a small one)")
    p.add_argument("--untrained", action="store_true", help="random weights (speed only; dp is not a trained model's)")
    p.add_argument("--default-model", action="store_true", help="the package's default model (what plain predict runs)")
    p.add_argument("--no-photos", action="store_true", help="skip the photo runs")
    p.add_argument("--train-steps", type=int, default=400, help="steps of the model trained when no --ckpt")
    p.add_argument("--loops", type=int, default=4, help="times single_face.mp4 is repeated")
    p.add_argument("--grid", type=int, default=3, help="GRID clips used")
    p.add_argument("--clips", nargs="*", default=list(CLIPS), help="pyfeat clips used besides single_face.mp4")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads; the CPU-time figures assume as many cores")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--no-detector", action="store_true", help="skip the detector-only measurements")
    p.add_argument("--refine-passes", type=int, default=None,
                   help="data.init_args.refine_passes for every setting (default: predict's; 0: MTCNN's own points)")
    p.add_argument("--smoke", action="store_true", help="12 frames, one photo, an untrained model, two settings")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = ["per-frame", "every 3 + min 0.15"] if args.smoke else list(dict.fromkeys(["per-frame", *args.settings]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips, pics = videos(tmp, args.loops, args.grid, args.smoke, args.clips), [] if args.no_photos else photos(args.smoke)
        untrained = args.smoke or args.untrained
        if args.default_model:
            ckpt = None  # run_predict's default: the model shipped in the package
        else:
            ckpt = args.ckpt or (default_checkpoint(tmp) if untrained else trained_checkpoint(args.train_steps))
        print(f"videos: {', '.join(c.name for c in clips)}; photos: {', '.join(map(str, pics)) or 'none'}")
        print(f"refine_passes: {'the default' if args.refine_passes is None else args.refine_passes}; "
              f"model: {ckpt or 'the default model'}; torch threads: {torch.get_num_threads()}; cpus: {os.cpu_count()}; "
              f"load average: {os.getloadavg()[0]:.1f}")  # fmt: skip
        if not args.no_detector:
            frames = [f for _, f in iter_video_frames(clips[0])][: 4 if args.smoke else None]
            print(f"detector only ({len(frames)} frames of {clips[0].name}, {frames[0].shape[1]}x{frames[0].shape[0]}):")
            print("\n".join(detector_only(frames, args.threads)))
        print(f"\nsteady = first decoded frame -> CSVs written; start-up = CLI, model load, detector build. "
              f"'cpu' frames/s = frames / (process CPU s / {args.threads}). Cost vs per-frame detection, "
              f"faces matched by IoU >= {MATCH_IOU} per input and frame; dp = |difference| of the 7 EXPR "
              f"probabilities per face (max over classes).")  # fmt: skip
        print(f"{'setting':30s} {'frames/s':>15s} {'cpu/':>5s} {'start-up s':>13s} | {'lost':>5s} {'added':>5s} "
              f"{'IoU':>6s} {'dp':>6s} {'dp':>6s} {'dp':>7s} | {'photos':>7s}")  # fmt: skip
        print(f"{'':30s} {'wall':>7s} {'cpu':>7s} {'wall':>5s} {'wall':>6s} {'cpu':>6s} | {'%':>5s} {'faces':>5s} "
              f"{'mean':>6s} {'max':>6s} {'p99':>6s} {'mean':>7s} | {'lost':>7s}")  # fmt: skip
        ref_run = ref_photos = None
        photo_runs: dict[tuple, pd.DataFrame] = {}
        for name in settings:
            diff = SETTINGS[name]
            options = None if diff is None else {**REFERENCE, **diff}
            run = predict(ckpt, clips, tmp / f"v{len(photo_runs)}_{name.replace(' ', '_')}", options, args.refine_passes)
            ref_run = ref_run or run
            photo = None
            if pics:
                full = options or {k: _default(k) for k in PHOTO_KEYS}
                key = tuple(full[k] for k in PHOTO_KEYS)
                if key not in photo_runs:
                    photo_runs[key] = predict(ckpt, pics, tmp / f"p{len(photo_runs)}", options, args.refine_passes).df
                ref_photos = ref_photos if ref_photos is not None else photo_runs[key]
                photo = accuracy_cost(ref_photos, photo_runs[key])
            print(row(name, run, ref_run, accuracy_cost(ref_run.df, run.df), photo, args.threads), flush=True)
            if name == "per-frame":
                probs = run.df.loc[run.df["face_detected"] == 1, [c for c in EXPR_CLASSES if c in run.df.columns]]
                share = probs.idxmax(axis=1).value_counts(normalize=True).round(2).to_dict()
                print(f"{'':30s} (reference: {run.frames} frames, {len(probs)} faces; mean top probability "
                      f"{probs.max(axis=1).mean():.2f}; argmax shares {share})")  # fmt: skip
    return 0


def _default(key: str):
    import inspect

    return inspect.signature(MediaDataModule.__init__).parameters[key].default


# ---------------------------------------------------------------------- --memory
# ``python benchmarks/bench_predict.py --memory [--minutes 1 10] [--video PATH] [--detect-every 1]``: peak
# resident memory of ``affect predict`` (a fresh process per video, the CLI's default outputs) on videos
# of each length made by looping the real clip (its packets copied, not re-encoded); rows and crops are
# streamed to disk as they are predicted, so the peak should not grow with the video's length.


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

"""``make demo`` / ``affect demo``: the main job in a few minutes, from a fresh clone.

1. Writes small corpora of learnable procedural faces (``affect.data.synthetic``) in the native
   on-disk layouts of Aff-Wild2 (videos), AffectNet, RAF-DB and BP4D (``affect.data.fixtures``).
2. Trains FaceBehaviorNet through the real CLI (``experiments/demo/facebehaviornet.yaml``, the
   same ``affect fit`` a user runs): one batch of each domain per step (VA, AU, EXPR; each domain's
   batch carries only its domain's labels) with the coupling losses (soft co-annotation +
   distribution matching, Table V [38]). ``--compare`` also trains the uncoupled run (eq. 7 only);
   whether coupling helps is not decided by one short demo run: the seeded evidence is the
   procedural Table VI (``benchmarks/table6_procedural.py``).
3. Validates the best checkpoint, prints the table (CCC-V, CCC-A, EXPR F1 / Acc / E_total, AU F1 /
   AFA, P_MTL), writes it to ``results.md`` and says where the metrics, plots, W&B offline runs and
   checkpoints are.
4. Runs ``affect predict`` with the default model on a real video (``videos/pyfeat/single_face.mp4``
   of the shared data folder; a procedural Aff-Wild2 video when that is absent) and says where the
   CSV and plots are. Without a default model in the package it uses the demo's own checkpoint and
   says so.

    affect demo [--out demo_out] [--epochs 4] [--compare] [--video clip.mp4]   (or: python -m affect.demo ...)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import yaml

from affect.configs import config_path

CONFIG = config_path("demo/facebehaviornet")  # the shipped config (checkout or installed package)
# Sized for the CPU budget (corpora, training, validation and predict in a few CPU minutes): many
# distinct faces seen a few times each (a few hundred faces seen for many epochs are memorised: train
# accuracy 0.8, validation at chance), at 48 px (the size at which the procedural geometry is learnt
# quickly, tests/data/test_synthetic.py).
DEMO_CORPORA = {
    "affwild2": {"n_videos": 6, "n_frames": 100, "size": 48, "with_videos": True},
    "affectnet": {"n_per_split": 1200, "size": 48},
    "rafdb": {"n_train": 2000, "n_test": 100, "subsets": ("basic",)},
    "bp4d": {"subjects": ("F001", "M007", "F018", "F008", "M011", "F003"), "tasks": ("T1", "T2"), "n_frames": 60,
             "size": 48},
}
# The loss options each run sets (the YAML holds the rest: relatedness, lambda_dm, lambda_soft, ...).
RUNS = {
    "coupled": {"soft_co_annotation": True, "distribution_matching": True},
    "no_coupling": {"soft_co_annotation": False, "distribution_matching": False},
}
COLUMNS = [
    ("CCC-V", "val/va/ccc_v"), ("CCC-A", "val/va/ccc_a"),
    ("EXPR F1", "val/expr/f1"), ("EXPR Acc", "val/expr/acc"), ("E_total^Expr", "val/expr/e_total"),
    ("AU F1", "val/au/f1"), ("AU AFA", "val/au/afa"), ("P_MTL", "val/p_mtl"),
]
REAL_VIDEO = Path("videos") / "pyfeat" / "single_face.mp4"
"""The real clip the demo ends on, relative to the shared data folder."""


def write_corpora(data: Path) -> None:
    from affect.data.fixtures import write_fixture_tree

    stamp = data / ".complete"
    wanted = json.dumps(DEMO_CORPORA, sort_keys=True)
    if stamp.exists() and stamp.read_text() == wanted:
        print(f"demo corpora: reusing {data}")
        return
    shutil.rmtree(data, ignore_errors=True)
    t = time.perf_counter()
    write_fixture_tree(data, list(DEMO_CORPORA), options=DEMO_CORPORA)
    stamp.write_text(wanted)
    print(f"demo corpora: wrote Aff-Wild2, AffectNet, RAF-DB and BP4D layouts under {data} "
          f"in {time.perf_counter() - t:.0f} s")


def model_layer(loss_options: dict) -> dict:
    """The ``model`` part of a run's config layer: the options of the module's ``loss`` part
    (merged into the demo YAML's ``loss: MultiTaskLoss``)."""
    return {"init_args": {"loss": {"init_args": dict(loss_options)}}}


def run_overrides(run_dir: Path, loss_options: dict, epochs: int) -> dict:
    """A config layered after the demo YAML: this run's directory, loggers and coupling switches."""
    save = str(run_dir)
    return {
        "model": model_layer(loss_options),
        "trainer": {
            "max_epochs": epochs,
            "default_root_dir": save,
            "logger": [
                {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": save, "name": "csv"}},
                {"class_path": "lightning.pytorch.loggers.WandbLogger",
                 "init_args": {"project": "affect-demo", "save_dir": save, "name": run_dir.name, "offline": True}},
            ],
        },
    }


def train_and_validate(name: str, loss_options: dict, out: Path, epochs: int) -> dict[str, float]:
    from affect.cli import build_cli

    run_dir = out / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    layer = run_dir / "run.yaml"
    layer.write_text(yaml.safe_dump(run_overrides(run_dir, loss_options, epochs)))
    t = time.perf_counter()
    cli = build_cli(["fit", "--config", str(CONFIG), "--config", str(layer)])
    minutes = (time.perf_counter() - t) / 60
    trainer = cli.trainer
    best = trainer.checkpoint_callback.best_model_path
    trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    metrics["minutes"] = minutes
    metrics["checkpoint"] = best
    for logger in trainer.loggers:  # close the W&B run, so the next run gets its own
        if hasattr(logger, "experiment") and type(logger).__name__ == "WandbLogger":
            import wandb

            wandb.finish()
    (run_dir / "val_metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True, default=str))
    print(f"{name}: trained {epochs} epochs in {minutes:.1f} min; best checkpoint {best}")
    return metrics


def table(results: dict[str, dict[str, float]]) -> str:
    head = "| run | " + " | ".join(c for c, _ in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    rows = [
        f"| {name} | " + " | ".join(f"{float(m.get(key, float('nan'))):.3f}" for _, key in COLUMNS) + " |"
        for name, m in results.items()
    ]
    chance = "| chance | 0.000 | 0.000 | ~0.14 | ~0.14 | ~0.14 | - | - | - |"
    return "\n".join([head, rule, *rows, chance])


def shared_data_dir() -> Path | None:
    """The real-data folder: ``$AFFECT_SHARED_DATA`` (or ``$AFFECT_SHARED``), else ``../shared/data``
    beside the checkout or beside the current folder; None when none exists."""
    candidates = [os.environ.get("AFFECT_SHARED_DATA"), os.environ.get("AFFECT_SHARED"),
                  Path(__file__).resolve().parents[2] / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def demo_video(data: Path, video: str | Path | None = None) -> tuple[Path, str]:
    """The video step 4 analyses and a phrase saying what it is: ``video`` when given, else the real
    clip of the shared data folder, else the first procedural Aff-Wild2 video of the demo corpora."""
    if video is not None:
        return Path(video), "the given video"
    shared = shared_data_dir()
    if shared is not None and (shared / REAL_VIDEO).is_file():
        return shared / REAL_VIDEO, "a real video from the shared data folder"
    procedural = sorted((data / "Aff-Wild2" / "videos").glob("*.mp4"))[0]
    return procedural, "a procedural video (the shared data folder with the real clip is absent)"


def default_model_available() -> tuple[bool, str]:
    """Whether the package ships a loadable default model, and why not when it does not."""
    try:
        from affect.models.default import load_default_model
    except ImportError:
        return False, "this version of affect ships no default model (affect.models.default)"
    from affect.errors import ConfigError

    try:
        load_default_model()
    except (ConfigError, FileNotFoundError) as err:  # DefaultModelError is a ConfigError
        return False, str(err).splitlines()[0]
    return True, ""


# Predict's speed options for the demo: detection on every 3rd frame (the tracker carries the boxes
# in between) and no pyramid levels for faces under a fifth of the frame (0 faces lost and box IoU
# >= 0.93 against per-frame detection on the real clip: docs/benchmarks.md, "Predict on media").
PREDICT_ARGS = ["--trainer.accelerator", "cpu", "--data.init_args.detect_every", "3",
                "--data.init_args.min_face_fraction", "0.2", "--data.init_args.progress", "false"]


def analyse_video(fallback_checkpoint: str, video: Path, out: Path) -> dict:
    """Step 4: ``affect predict`` with the default model (the demo's own checkpoint when the package
    has none) on ``video``; says where the CSV and plots are."""
    from affect.predict import run_predict

    available, why = default_model_available()
    if available:
        ckpt, which = None, "the default model"
    else:
        ckpt, which = fallback_checkpoint, "the demo's coupled checkpoint"
        print(f"no default model ({why}): predicting with the demo's own checkpoint {fallback_checkpoint}")
    shutil.rmtree(out / "predict", ignore_errors=True)  # a rerun replaces it (LightningCLI keeps no old config)
    predictions = out / "predict" / "predictions"
    summary = run_predict(ckpt, video, out / "predict", extra_args=PREDICT_ARGS)
    print(f"\naffect predict with {which} on {video}:\n  per-frame CSV {predictions / 'predictions.csv'}\n"
          f"  plots {predictions / 'plots'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="affect demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_out", help="folder for corpora, runs and results")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--compare", action="store_true",
                        help="also train without coupling (one seed: see benchmarks/table6_procedural.py)")
    parser.add_argument("--video", default=None, help="video for the last step (default: the real clip)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared machine two threads spin-wait on each other, ~20x "
                             "slower here)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    for key, value in (("HF_HUB_OFFLINE", "1"), ("NO_ALBUMENTATIONS_UPDATE", "1"), ("WANDB_MODE", "offline"),
                       ("WANDB_SILENT", "true")):
        os.environ.setdefault(key, value)
    start = time.perf_counter()
    out = Path(args.out).resolve()
    data = out / "data"
    write_corpora(data)
    os.environ["AFFECT_DATA"] = str(data)
    names = list(RUNS) if args.compare else ["coupled"]
    results = {name: train_and_validate(name, RUNS[name], out, args.epochs) for name in names}
    text = table(results)
    (out / "results.md").write_text(
        "# affect demo: FaceBehaviorNet on procedural corpora (validation sets, best checkpoint)\n\n" + text + "\n"
        "\nOne short run on procedural faces; whether coupling helps is measured over seeds by "
        "benchmarks/table6_procedural.py.\n"
    )
    print("\nValidation (best checkpoint):\n" + text)
    print(f"\nresults table: {out / 'results.md'}")
    for name in names:
        run_dir = out / "runs" / name
        media = sorted(run_dir.glob("csv/version_*/media"))
        wandb_runs = sorted(run_dir.glob("wandb/offline-run-*"))
        print(f"{name}: metrics {run_dir}/csv/version_*/metrics.csv; plots {media[-1] if media else '-'}; "
              f"W&B offline run {wandb_runs[-1] if wandb_runs else '-'} (wandb sync to upload); "
              f"checkpoints {run_dir}/csv/version_*/checkpoints")
    video, what = demo_video(data, args.video)
    print(f"\nlast step: affect predict on {what}")
    analyse_video(results["coupled"]["checkpoint"], video, out)
    print(f"\naffect demo: done in {(time.perf_counter() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``make demo``: FaceBehaviorNet on procedural corpora in their native layouts, from a fresh clone.

1. Writes demo-sized corpora of learnable procedural faces (``affect.data.synthetic``) in the
   native on-disk layouts of Aff-Wild2, AffectNet, RAF-DB and BP4D (``affect.data.fixtures``).
2. Trains FaceBehaviorNet through the real CLI (``experiments/demo/facebehaviornet.yaml``, the
   same ``affect fit`` a user runs) twice: with the coupling losses (soft co-annotation +
   distribution matching, Table V [38]: the paper's best Table VI row) and without them (eq. 7
   only). Both use the corrected multi-domain setup: each domain's batch carries only its
   domain's labels (``MultiDomainDataModule``'s default), and distribution matching is the
   per-AU Bernoulli KL over the related AUs (``MultiTaskLoss(dm_form="matched")``, the default).
3. Evaluates the best checkpoint of each on the validation sets and prints the table (CCC-V,
   CCC-A, EXPR F1 / Acc / E_total, AU F1 / AFA), writes it to ``results.md``, and says where the
   plots, the W&B offline runs and the checkpoints are.
4. Analyses one procedural video with the coupled model through ``affect predict`` (per-frame CSV,
   timeline plot).

    python -m affect.demo [--out demo_out] [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "demo" / "facebehaviornet.yaml"
DEMO_CORPORA = {
    "affwild2": {"n_videos": 12, "n_frames": 150, "size": 64, "with_videos": True},
    "affectnet": {"n_per_split": 700, "size": 64},
    "rafdb": {"n_train": 900, "n_test": 100, "subsets": ("basic",)},
    "bp4d": {"subjects": ("F001", "M007", "F018", "F008", "M011", "F003", "F007", "F015"),
             "tasks": ("T1", "T2", "T3"), "n_frames": 60, "size": 64},
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


def write_corpora(data: Path) -> None:
    from affect.data.fixtures import write_fixture_tree

    if (data / ".complete").exists():
        print(f"demo corpora: reusing {data}")
        return
    shutil.rmtree(data, ignore_errors=True)
    t = time.perf_counter()
    write_fixture_tree(data, list(DEMO_CORPORA), options=DEMO_CORPORA)
    (data / ".complete").write_text("ok\n")
    print(f"demo corpora: wrote Aff-Wild2, AffectNet, RAF-DB and BP4D layouts under {data} in {time.perf_counter() - t:.0f} s")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affect.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_out", help="folder for corpora, runs and results")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    for key, value in (("HF_HUB_OFFLINE", "1"), ("NO_ALBUMENTATIONS_UPDATE", "1"), ("WANDB_MODE", "offline"),
                       ("WANDB_SILENT", "true")):
        os.environ.setdefault(key, value)
    out = Path(args.out).resolve()
    data = out / "data"
    write_corpora(data)
    os.environ["AFFECT_DATA"] = str(data)
    results = {name: train_and_validate(name, options, out, args.epochs) for name, options in RUNS.items()}
    text = table(results)
    (out / "results.md").write_text(
        "# affect demo: FaceBehaviorNet on procedural corpora (validation sets, best checkpoint)\n\n" + text + "\n"
    )
    print("\nValidation (best checkpoint of each run):\n" + text)
    print(f"\nresults table: {out / 'results.md'}")
    for name in RUNS:
        run_dir = out / "runs" / name
        media = sorted(run_dir.glob("csv/version_*/media"))
        wandb_runs = sorted(run_dir.glob("wandb/offline-run-*"))
        print(f"{name}: metrics {run_dir}/csv/version_*/metrics.csv; plots {media[-1] if media else '-'}; "
              f"W&B offline run {wandb_runs[-1] if wandb_runs else '-'} (wandb sync to upload); "
              f"checkpoints {run_dir}/csv/version_*/checkpoints")
    analyse_video(results["coupled"]["checkpoint"], data, out)
    return 0


def analyse_video(checkpoint: str, data: Path, out: Path) -> dict:
    """Step 4: ``affect predict`` with the coupled model on one procedural Aff-Wild2 video (its raw
    mp4: MTCNN + alignment + tracks, as on a user's video); says where the CSV and plots are."""
    from affect.predict import run_predict

    video = sorted((data / "Aff-Wild2" / "videos").glob("*.mp4"))[0]
    summary = run_predict(checkpoint, video, out / "predict", extra_args=["--trainer.accelerator", "cpu"])
    print(f"\naffect predict on {video.name}: per-frame CSV {out / 'predict' / 'predictions' / 'predictions.csv'}, "
          f"plots {out / 'predict' / 'predictions' / 'plots'}")
    return summary


if __name__ == "__main__":
    raise SystemExit(main())

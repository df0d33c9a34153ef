"""A procedural Table VI: does coupling help FaceBehaviorNet where the paper says it does?

Paper Sec. VI-B / Table VI on the procedural corpora (``affect.data.fixtures``: faces drawn by
``affect.data.synthetic``, whose AUs follow Table V [38]), written in their native layouts and
read by the real parsers and :class:`~affect.data.multidomain.MultiDomainDataModule`:

- **VA-Set**: AffectNet (VA; its EXPR labels are masked out of the VA batch, as in the paper);
- **AU-Set**, annotated on few images: BP4D (12 AUs, 6 subjects, fold 0's 2 subjects held out)
  and a few EmotioNet images, the only ones annotating AU5, 9, 20, 25 and 26;
- **EXPR-Set**: RAF-DB (basic), 20 % of it held out.

Rows (3 seeds each, the same per-domain batch sizes and the same number of steps: ``--epochs``
epochs of the multi-task run, whose epoch is its longest domain's): the three
single-task networks (each trained on its own set only), FaceBehaviorNet without coupling, with
co-annotation, distribution matching, soft co-annotation, and soft co-annotation + distribution
matching (the paper's best row), all with the Table V [38] relatedness and the default loss
options of :class:`affect.losses.MultiTaskLoss`. ``--rows`` adds ablations, e.g.
``dm_printed`` / ``soft_dm_printed`` (eq. 9 as printed). Reports mean ± std over seeds of the
validation CCC-V / CCC-A, EXPR F1, AU F1 (mean over the annotated AUs) and the F1 of the AUs
that only the few EmotioNet images annotate.

    nice -n 10 python -m benchmarks.table6_procedural [--out table6_out] [--epochs 8] [--seeds 3]

Finished runs are kept as JSON under ``--out/results`` (a re-run skips them; delete to redo).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
import warnings
from pathlib import Path

FEW_IMAGE_AUS = (5, 9, 20, 25, 26)  # annotated by the EmotioNet images only (BP4D codes the other 12)
SIZE = 48  # side of the written faces; --image-size is what the network sees
CORPORA = {  # writer options of affect.data.fixtures (image side SIZE where the writer takes one)
    "affectnet": {"n_per_split": 480, "size": SIZE, "specials": False},
    "bp4d": {"subjects": ("F001", "M011", "F007", "F002", "M001", "F003"), "tasks": ("T1", "T2"),
             "n_frames": 12, "size": SIZE},
    "emotionet": {"n_per_split": 40, "n_compound": 0, "size": SIZE, "specials": False},
    "rafdb": {"n_train": 600, "n_test": 8, "subsets": ("basic",), "specials": False},
}
RELATEDNESS = "du2014"
ROWS: dict[str, tuple[tuple[str, ...], dict]] = {  # name: (tasks, MultiTaskLoss options)
    "single_task_va": (("va",), {}),
    "single_task_expr": (("expr",), {}),
    "single_task_au": (("au",), {}),
    "no_coupling": (("va", "expr", "au"), {}),
    "co_annotation": (("va", "expr", "au"), {"co_annotation": True}),
    "distr_matching": (("va", "expr", "au"), {"distribution_matching": True}),
    "soft_co_annotation": (("va", "expr", "au"), {"soft_co_annotation": True}),
    "soft_co_annotation_dm": (("va", "expr", "au"), {"soft_co_annotation": True, "distribution_matching": True}),
    # ablations (not run by default): eq. 9 exactly as printed
    "dm_printed": (("va", "expr", "au"), {"distribution_matching": True, "dm_form": "printed"}),
    "soft_dm_printed": (("va", "expr", "au"),
                        {"soft_co_annotation": True, "distribution_matching": True, "dm_form": "printed"}),
}
DEFAULT_ROWS = [r for r in ROWS if "printed" not in r]
COUPLING_SWITCHES = ("co_annotation", "distribution_matching", "soft_co_annotation")


def write_corpora(data: Path) -> None:
    """The procedural corpora under ``data`` (written once; ``.complete`` marks a finished tree)."""
    from affect.data.fixtures import write_fixture_tree

    if (data / ".complete").exists():
        return
    t = time.perf_counter()
    write_fixture_tree(data, list(CORPORA), options=CORPORA)
    (data / ".complete").write_text(json.dumps(CORPORA, default=list) + "\n")
    print(f"corpora written under {data} in {time.perf_counter() - t:.0f} s", flush=True)


def make_datamodule(data: Path, tasks, batch_sizes: dict[str, int], image_size: int):
    """VA-Set / AU-Set / EXPR-Set of ``tasks`` (single-task rows get their own set only)."""
    from affect.data.corpora.affectnet import AffectNetDataModule
    from affect.data.corpora.bp4d import BP4DDataModule
    from affect.data.corpora.emotionet import EmotioNetDataModule
    from affect.data.corpora.rafdb import RafDbDataModule
    from affect.data.multidomain import MultiDomainDataModule

    sets = {
        "va": lambda: [AffectNetDataModule(str(data / "AffectNet"), image_size=image_size)],
        "au": lambda: [BP4DDataModule(str(data / "BP4D"), image_size=image_size, fold=0),
                       EmotioNetDataModule(str(data / "EmotioNet"), image_size=image_size)],
        "expr": lambda: [RafDbDataModule(str(data / "RAF-DB"), image_size=image_size, val_fraction=0.2)],
    }
    return MultiDomainDataModule(
        **{t: sets[t]() for t in tasks}, batch_sizes="fixed",
        **{f"{t}_batch_size": batch_sizes[t] for t in tasks},
    )


def make_module(loss_kwargs: dict, tasks, seed: int, lr: float, image_size: int, hidden: int = 128):
    """FaceBehaviorNet with the loss ``loss_kwargs`` (the one place the model is built)."""
    import lightning as L

    from affect.labels import AU_SET
    from affect.losses import MultiTaskLoss
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    L.seed_everything(seed, workers=True, verbose=False)
    coupled = any(loss_kwargs.get(k) for k in COUPLING_SWITCHES)
    loss = MultiTaskLoss(relatedness=RELATEDNESS if coupled else None, au_set=AU_SET, **loss_kwargs)
    return FaceBehaviorNetModule(backbone="test_resnet", hidden=hidden, dropout=0.5, image_size=image_size,
                                 tasks=tasks, lr=lr, loss=loss)


def run_one(data: Path, name: str, seed: int, steps: int, batch_sizes: dict[str, int], lr: float,
            image_size: int) -> dict:
    import lightning as L

    tasks, loss_kwargs = ROWS[name]
    dm = make_datamodule(data, tasks, batch_sizes, image_size)
    module = make_module(loss_kwargs, tasks, seed, lr, image_size)
    quiet = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
             "enable_model_summary": False}
    trainer = L.Trainer(max_epochs=-1, max_steps=steps, limit_val_batches=0, num_sanity_val_steps=0, **quiet)
    t = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    t_fit = time.perf_counter() - t
    evaluator = L.Trainer(**quiet)  # validation of the final weights only (not during fit)
    evaluator.validate(module, datamodule=dm, verbose=False)
    metrics = {k: float(v) for k, v in evaluator.callback_metrics.items() if k.startswith("val/")}
    return {"row": name, "seed": seed, "steps": trainer.global_step, "batch_sizes": batch_sizes,
            "seconds": time.perf_counter() - t, "fit_seconds": t_fit, "metrics": metrics}


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("affect").setLevel(logging.WARNING)


def _job(job: tuple) -> str:
    """Train and validate one (row, seed) unless its result file exists; returns a progress line."""
    data, name, seed, steps, batch_sizes, lr, image_size, path = job
    if Path(path).exists():
        return f"{name} seed {seed}: done before ({path})"
    res = run_one(Path(data), name, seed, steps, batch_sizes, lr, image_size)
    Path(path).write_text(json.dumps(res, indent=1, sort_keys=True))
    vals = {k: v for k, v in column_values(res).items() if v is not None}
    return (f"{name} seed {seed}: {res['steps']} steps, {res['seconds']:.0f} s; "
            + ", ".join(f"{k} {v:.3f}" for k, v in vals.items() if not k.startswith("AU") or k.startswith("AU F1")))


def column_values(result: dict) -> dict[str, float]:
    m = result["metrics"]
    out = {"CCC-V": m.get("val/va/ccc_v"), "CCC-A": m.get("val/va/ccc_a"), "EXPR F1": m.get("val/expr/f1"),
           "AU F1": m.get("val/au/f1")}
    few = [m.get(f"val/au/f1_AU{a}") for a in FEW_IMAGE_AUS]
    out["AU F1 few-image AUs"] = None if None in few else sum(few) / len(few)
    for a, v in zip(FEW_IMAGE_AUS, few, strict=True):
        out[f"AU{a}"] = v
    return {k: (None if v is None or math.isnan(v) else v) for k, v in out.items()}


COLUMNS = ["CCC-V", "CCC-A", "EXPR F1", "AU F1", "AU F1 few-image AUs", *(f"AU{a}" for a in FEW_IMAGE_AUS)]


def mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def table(results: dict[str, list[dict]]) -> str:
    """Markdown: one row per configuration, mean ± std (sample std) over its seeds; '-' = task not trained."""
    head = "| row | seeds | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(COLUMNS)]
    single = {n: r for n, r in results.items() if n.startswith("single_task_")}
    merged = {}
    if len(single) == 3:  # Table VI's "(3x) single-task" row: each column from its own network
        merged["(3x) single-task"] = [
            {k: v for r in ([single[f"single_task_{t}"][i] for t in ("va", "expr", "au")]) for k, v in
             column_values(r).items() if v is not None}
            for i in range(min(len(v) for v in single.values()))
        ]
    for name, runs in results.items():
        if name not in single:
            merged[name] = [column_values(r) for r in runs]
    for name, runs in merged.items():
        cells = []
        for col in COLUMNS:
            vals = [r[col] for r in runs if r.get(col) is not None]
            cells.append("-" if not vals else "{:.3f} ± {:.3f}".format(*mean_std(vals)))
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table6_procedural", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="table6_out", help="folder for the corpora and the per-run results")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--total-batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: on a shared 2-core CPU, 2 threads ran 7x slower per step)")
    parser.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, choices=list(ROWS))
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (processes)")
    args = parser.parse_args(argv)
    for key, value in (("HF_HUB_OFFLINE", "1"), ("NO_ALBUMENTATIONS_UPDATE", "1")):
        os.environ.setdefault(key, value)

    _worker_init(args.threads)
    out = Path(args.out).resolve()
    data = out / "data"
    write_corpora(data)
    from affect.data.multidomain import auto_batch_sizes

    full = make_datamodule(data, ("va", "au", "expr"), {"va": 1, "au": 1, "expr": 1}, args.image_size)
    set_sizes = {d: len(full.domain_dataset(d, "train")) for d in full.domains}
    batch_sizes = auto_batch_sizes(set_sizes, args.total_batch_size)
    full.batch_size_mode, full.fixed_batch_sizes = "fixed", batch_sizes
    steps = args.epochs * max(full.steps_per_domain().values())  # every row: the multi-task run's steps
    print(f"train set sizes {set_sizes}; per-domain batch sizes {batch_sizes}; {args.epochs} multi-task epochs "
          f"= {steps} steps for every run", flush=True)

    res_dir = out / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    tag = f"t{steps}_s{args.image_size}_b{args.total_batch_size}"
    todo = [(name, seed) for seed in range(args.seeds) for name in args.rows]  # seed-major: early rows compare
    jobs = [(str(data), name, seed, steps, batch_sizes, args.lr, args.image_size,
             str(res_dir / f"{name}_seed{seed}_{tag}.json")) for name, seed in todo]
    t0 = time.perf_counter()
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs, initializer=_worker_init, initargs=(args.threads,)) as pool:
            for line in pool.imap_unordered(_job, jobs):
                print(line, flush=True)
    else:
        for job in jobs:
            print(_job(job), flush=True)
    results: dict[str, list[dict]] = {}
    for (name, _), job in zip(todo, jobs, strict=True):
        results.setdefault(name, []).append(json.loads(Path(job[-1]).read_text()))
    print(f"\nall runs: {(time.perf_counter() - t0) / 60:.1f} min\n")
    text = table(results)
    (out / "table6.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

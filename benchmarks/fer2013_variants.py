"""Held-out scores of one FER2013 run's checkpoint with and without the evaluation-time options.

A run trained with Lightning's ``EMAWeightAveraging`` callback (an option of
``experiments/fer2013.yaml``) has a checkpoint holding the averaged weights (``state_dict``) and the
raw weights of the same step (``current_model_state``). This script validates, through
``affect validate``, each of

- ``raw`` / ``ema`` weights (what the EMA adds; one row of weights "as saved" without an EMA),
- ``test_time_flip`` off / on (what averaging a face with its mirror image adds),

on the run's own held-out split (the config's ``val_fraction``), and prints one row per variant:
accuracy, macro-F1 and UAR. The rows of the FER2013 table in ``docs/results.md`` ("Real faces: FER2013")
come from it.

Run: ``python benchmarks/fer2013_variants.py --config experiments/fer2013.yaml --ckpt runs/fer2013/.../best.ckpt``
(``AFFECT_DATA`` must hold ``fer2013/``; other arguments go to ``affect validate``, e.g. the run's
``--data.init_args.store``). ``--smoke`` runs it on a generated FER-layout folder with
a checkpoint trained for one step (what ``tests/test_benchmarks.py`` runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from affect.cli import build_cli  # noqa: E402

METRICS = ("acc", "f1", "uar")


def checkpoint_variant(ckpt: Path, out: Path, raw: bool, flip: bool) -> Path | None:
    """A copy of ``ckpt`` with the raw (not averaged) weights when ``raw`` and ``test_time_flip`` set
    to ``flip`` in its hyper-parameters (``--ckpt_path`` takes the model's arguments from the
    checkpoint, so the flag is set there); ``None`` for ``raw`` without an EMA in the checkpoint."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    if raw:
        if "current_model_state" not in checkpoint:
            return None
        checkpoint["state_dict"] = checkpoint.pop("current_model_state")
        checkpoint.pop("averaging_state", None)
    checkpoint["hyper_parameters"]["test_time_flip"] = flip
    torch.save(checkpoint, out)
    return out


def validate(config: Path, ckpt: Path, root: Path, extra: list[str]) -> dict[str, float]:
    """``affect validate`` of ``ckpt``; the held-out split's EXPR metrics."""
    cli = build_cli(["validate", "--config", str(config), "--ckpt_path", str(ckpt), "--trainer.callbacks=null",
                     "--trainer.logger=false", f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false",
                     *extra])  # fmt: skip
    assert cli.model.test_time_flip == torch.load(ckpt, weights_only=True)["hyper_parameters"]["test_time_flip"]
    return {m: float(cli.trainer.callback_metrics[f"val/expr/{m}"]) for m in METRICS}


def variants(config: Path, ckpt: Path, extra: list[str]) -> list[tuple[str, dict[str, float]]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        has_ema = "current_model_state" in torch.load(ckpt, map_location="cpu", weights_only=True)
        weights = [("raw", True), ("ema", False)] if has_ema else [("as saved", False)]
        for name, raw in weights:
            for flip in (False, True):
                path = checkpoint_variant(ckpt, Path(tmp) / f"{name}-{flip}.ckpt", raw, flip)
                label = f"{name} weights, test_time_flip={'on' if flip else 'off'}"
                rows.append((label, validate(config, path, Path(tmp) / f"{name}-{flip}", extra)))
    return rows


def smoke(tmp: Path) -> tuple[Path, Path, list[str]]:
    """A generated FER-layout folder and a checkpoint of one training step on it (EMA on)."""
    from affect.data.fixtures import write_fixture_tree

    write_fixture_tree(tmp, ["fer2013"])
    os.environ["AFFECT_DATA"] = str(tmp)
    config = Path(__file__).resolve().parents[1] / "experiments" / "fer2013.yaml"
    extra = ["--model.init_args.hidden=16", "--data.init_args.batch_size=8", "--data.init_args.num_workers=0"]
    ema = tmp / "ema.yaml"
    ema.write_text("trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.EMAWeightAveraging\n"
                   "      init_args: {decay: 0.9}\n")  # fmt: skip
    run = tmp / "run"
    build_cli(["fit", "--config", str(config), "--config", str(ema), "--trainer.max_epochs=1", "--trainer.max_time=null",
               f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}", *extra])  # fmt: skip
    return config, next(run.rglob("*.ckpt")), extra


def main(argv: list[str] | None = None) -> list[tuple[str, dict[str, float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="the run's config (experiments/fer2013.yaml)")
    parser.add_argument("--ckpt", type=Path, help="the run's checkpoint")
    parser.add_argument("--smoke", action="store_true", help="train one step on generated faces and evaluate that")
    args, passed = parser.parse_known_args(argv)  # the rest goes to affect validate (e.g. --data.init_args.store)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            config, ckpt, extra = smoke(Path(tmp))
        elif args.config is None or args.ckpt is None:
            parser.error("--config and --ckpt are required (or --smoke)")
        else:
            config, ckpt, extra = args.config, args.ckpt, passed
        rows = variants(config, ckpt, extra)
    print(f"{'variant':40s} " + " ".join(f"{m:>7s}" for m in METRICS))
    for label, scores in rows:
        print(f"{label:40s} " + " ".join(f"{scores[m]:7.4f}" for m in METRICS))
    return rows


if __name__ == "__main__":
    main()

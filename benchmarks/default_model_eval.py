"""Held-out scores of an EXPR checkpoint through ``affect test`` and through ``affect predict`` on the same images.

``affect test`` scores the held-out ``test`` split of the config's datamodule (for FER2013 from a store of
``affect prepare``: ``data.init_args.test_fraction`` holds a seeded part of the training folder out of
training and model selection). The same split's image files are then handed to ``affect predict`` as a
user would (``--data.init_args.select largest``, as the store was prepared), and its ``predictions.csv`` is
scored against the folder labels. Printed: accuracy and macro-F1 of both paths, their difference, and the
share of images with a face (detected, or the whole face-crop image: ``whole_image``) and with a detected one.

Run: ``AFFECT_DATA=../shared/data python benchmarks/default_model_eval.py --config experiments/fer2013_default.yaml
--ckpt runs/fer2013_default/.../best.ckpt [--out runs/eval] [--limit 500]``; other arguments go to both
commands' data piece is not changed (the store and the split come from the config).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from affect.labels import EXPR_CLASSES  # noqa: E402


def macro_f1(y: np.ndarray, p: np.ndarray, n: int = len(EXPR_CLASSES)) -> float:
    """Macro F1 over the ``n`` classes (a class absent from both ``y`` and ``p`` counts 0, as torchmetrics)."""
    f1 = []
    for c in range(n):
        tp, fp, fn = np.sum((p == c) & (y == c)), np.sum((p == c) & (y != c)), np.sum((p != c) & (y == c))
        f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


def through_test(config: str, ckpt: str, extra: list[str]) -> tuple[dict[str, float], pd.DataFrame, str]:
    from affect.cli import build_cli

    cli = build_cli(["test", "--config", config, "--ckpt_path", ckpt, "--trainer.logger=false", *extra])
    m = cli.trainer.callback_metrics
    dm = cli.datamodule
    held = dm.manifest[dm.manifest["split"] == "test"]
    if "status" in held.columns:
        held = held[held["status"] == "ok"]
    return {"acc": float(m["test/expr/acc"]), "f1": float(m["test/expr/f1"])}, held, dm.root


def through_predict(ckpt: str, held: pd.DataFrame, root: str, out: Path) -> dict[str, float]:
    from affect.predict import run_predict

    files = [str(Path(root) / p) for p in held["path"]]
    run_predict(ckpt, files, out, extra_args=["--data.init_args.select", "largest", "--data.init_args.progress", "false",
                                             "--trainer.callbacks.init_args.plots", "false"])  # fmt: skip
    rows = pd.read_csv(out / "predictions" / "predictions.csv")
    rows = rows.sort_values(["input", "face_id"]).groupby("input", sort=False).first()
    label = dict(zip(files, held["expr"].astype(int), strict=True))
    faced = rows[rows["face_detected"] == 1]
    pred = faced[list(EXPR_CLASSES)].to_numpy().argmax(1)
    y = np.array([label[i] for i in faced.index])
    # an image without a face is a wrong answer (the user got none)
    y_all = np.array(list(label.values()))
    p_all = np.full(len(files), -1)
    pos = {f: k for k, f in enumerate(files)}
    for i, c in zip(faced.index, pred, strict=True):
        p_all[pos[i]] = c
    return {
        "acc": float(np.mean(p_all == y_all)), "f1": macro_f1(y_all, p_all),
        "acc_on_faces": float(np.mean(pred == y)) if len(y) else float("nan"),
        "faces": len(faced) / len(files), "detected": float((faced["whole_image"] == 0).sum()) / len(files),
        "images": len(files),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", default="runs/default_model_eval")
    ap.add_argument("--limit", type=int, default=None, help="predict only the first N held-out images")
    args, extra = ap.parse_known_args(argv)
    test, held, root = through_test(args.config, args.ckpt, extra)
    if args.limit:
        held = held.iloc[: args.limit]
    pred = through_predict(args.ckpt, held, root, Path(args.out))
    result = {"affect_test": test, "affect_predict": pred, "acc_difference": pred["acc"] - test["acc"]}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

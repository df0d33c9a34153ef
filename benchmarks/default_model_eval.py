"""Held-out scores of an EXPR checkpoint through ``affect test`` and through ``affect predict`` on the same images.

``affect test`` scores the held-out ``test`` split of the config's datamodule (for FER2013 from a store of
``affect prepare``: ``data.init_args.test_fraction`` holds a seeded part of the training folder out of
training and model selection). The same split's image files are then handed to ``affect predict`` as a
user would (``--data.init_args.select largest``, as the store was prepared), and its ``predictions.csv`` is
scored against the folder labels. Printed: accuracy and macro-F1 of both paths, their difference, and the
share of images with a face (detected, or the whole face-crop image: ``whole_image``) and with a detected one;
macro F1 is over the images with a face (the project's own :func:`affect.metrics.functional.expr_metrics`).

Run: ``AFFECT_DATA=../shared/data python benchmarks/default_model_eval.py --config experiments/fer2013_default.yaml
--ckpt runs/fer2013_default/.../best.ckpt [--out runs/eval] [--limit 500]``; other arguments go to ``affect test``
(e.g. the run's ``--data.init_args.store``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from affect.labels import EXPR_CLASSES  # noqa: E402
from affect.metrics.functional import expr_metrics  # noqa: E402


def through_test(config: str, ckpt: str, out: Path, extra: list[str]) -> tuple[dict[str, float], pd.DataFrame, str]:
    from affect.cli import build_cli

    cli = build_cli(["test", "--config", config, "--ckpt_path", ckpt, "--trainer.logger=false",
                     "--trainer.default_root_dir", str(out / "test"), *extra])  # its own folder (config.yaml)
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
    scores = expr_metrics(torch.from_numpy(pred), torch.from_numpy(y), num_classes=len(EXPR_CLASSES))
    n_missing = len(files) - len(faced)  # an image without a face is a wrong answer (the user got none)
    return {
        "acc": float(np.sum(pred == y)) / len(files), "f1": float(scores["f1"]),
        "acc_on_faces": float(scores["acc"]), "faces": len(faced) / len(files),
        "detected": float((faced["whole_image"] == 0).sum()) / len(files), "images": len(files),
        "images_without_face": n_missing,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", default="runs/default_model_eval")
    ap.add_argument("--limit", type=int, default=None, help="predict only the first N held-out images")
    args, extra = ap.parse_known_args(argv)
    test, held, root = through_test(args.config, args.ckpt, Path(args.out), extra)
    if args.limit:
        held = held.iloc[: args.limit]
    pred = through_predict(args.ckpt, held, root, Path(args.out))
    result = {"affect_test": test, "affect_predict": pred, "acc_difference": pred["acc"] - test["acc"]}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

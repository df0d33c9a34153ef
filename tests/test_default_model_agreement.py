"""The shipped default model sees in ``affect predict`` what it was scored on by ``affect test``.

On held-out FER2013 images of its own training run (``experiments/fer2013_default.yaml``:
``test_fraction`` 0.1, seed 0 -- never trained on, never used for model selection), 10 per class:
``affect prepare`` + ``affect test`` and ``affect predict`` on the same files give the same accuracy
(within one image in 70), and predict gives every image a face. The full held-out set is scored by
``benchmarks/default_model_eval.py`` (docs/model_card.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affect.labels import EXPR_CLASSES

SHARED = Path(os.environ.get("AFFECT_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
FER = SHARED / "fer2013"

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def test_affect_test_and_affect_predict_agree_on_held_out_faces(tmp_path):
    from affect.models.default import DefaultModelError, default_checkpoint, read_manifest

    try:
        read_manifest()
    except DefaultModelError as err:
        pytest.skip(f"no default model in this install: {err}")
    if not (FER / "train").is_dir():
        pytest.skip(f"real FER2013 not found at {FER} (set AFFECT_SHARED_DATA)")
    import torch

    from affect.cli import build_cli, main
    from affect.data.corpora.fer2013 import Fer2013DataModule
    from affect.prepare import main as prepare

    torch.set_num_threads(1)
    held = Fer2013DataModule(str(FER), test_fraction=0.1, val_fraction=0.1, split_seed=0).manifest
    held = held[held["split"] == "test"].groupby("expr", group_keys=False).head(10)
    assert len(held) == 70
    manifest = tmp_path / "held_out.csv"
    held[["path", "corpus", "split", "expr"]].to_csv(manifest, index=False)
    store = tmp_path / "store"
    assert prepare(["csv", "--root", str(FER), "--manifest", str(manifest), "--out", str(store),
                    "--select", "largest", "--image-size", "96", "--workers", "1", "--no-progress"]) == 0  # fmt: skip

    ckpt = default_checkpoint(tmp_path / "default.ckpt")
    cli = build_cli(["test", "--config", "fer2013_default", "--ckpt_path", str(ckpt), "--trainer.logger=false",
                     "--trainer.accelerator=cpu", "--trainer.default_root_dir", str(tmp_path / "test_run"),
                     "--data.init_args.root", str(FER), "--data.init_args.store", str(store),
                     "--data.init_args.test_fraction", "0", "--data.init_args.val_fraction", "0"])  # fmt: skip
    acc_test = float(cli.trainer.callback_metrics["test/expr/acc"])

    files = [str(FER / p) for p in held["path"]]
    out = tmp_path / "predicted"
    assert main(["predict", *files, "-o", str(out), "--select", "largest", "--no-plots", "--no-progress",
                 "--device", "cpu"]) == 0  # fmt: skip
    rows = pd.read_csv(out / "predictions.csv")
    assert sorted(rows["input"]) == sorted(files) and (rows["face_detected"] == 1).all()
    label = dict(zip(files, held["expr"].astype(int), strict=True))
    pred = rows[list(EXPR_CLASSES)].to_numpy().argmax(1)
    acc_predict = float(np.mean(pred == rows["input"].map(label).to_numpy()))
    assert abs(acc_predict - acc_test) <= 1 / 70 + 1e-9, (acc_test, acc_predict)
    assert acc_predict > 0.4  # far above chance (1/7): the model works on these faces

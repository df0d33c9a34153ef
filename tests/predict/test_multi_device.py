"""``affect predict --trainer.devices 2 --trainer.strategy ddp``: two real gloo processes through the CLI
write what one process writes.

Each process takes whole inputs (``shard_inputs``: a video's tracks stay together) and runs detection
and the model on them; the writer gathers the rows on rank 0, which writes the outputs in input order.
The A/V model of ``conftest.py`` is used, so the sequence windows and the audio go through both paths.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_cli import affect_cmd

from affect.predict import CONFIG, run_predict
from affect.predict.columns import META_COLUMNS

pytestmark = [pytest.mark.slow, pytest.mark.ddp]
ARGS = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false",
        "--data.init_args.frame_stride", "2", "--data.init_args.sequence_length", "4"]  # fmt: skip


def test_two_processes_write_what_one_process_writes(av_checkpoint, av_media, bad_inputs, tmp_path):
    ckpt = av_checkpoint[0]
    inputs = [str(av_media[k]) for k in ("with_audio", "no_audio", "image", "other_audio")] + [str(bad_inputs["no_face"])]
    one = run_predict(ckpt, inputs, tmp_path / "one", ARGS)
    two = affect_cmd("predict", "--config", str(CONFIG), "--ckpt_path", str(ckpt), "--data.init_args.inputs",
                     json.dumps(inputs), "--trainer.default_root_dir", str(tmp_path / "two"), "--trainer.devices", "2",
                     "--trainer.strategy", "ddp", *ARGS, cwd=tmp_path, timeout=300)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("affect predict: 5 inputs") == 1  # rank 0 alone sums up

    a, b = (pd.read_csv(tmp_path / run / "predictions" / "predictions.csv") for run in ("one", "two"))
    assert list(a.columns) == list(b.columns) and len(a) == len(b) == 6 + 6 + 1 + 6 + 3
    assert a["input"].drop_duplicates().tolist() == inputs  # input order (the no-face clip: rows, no predictions)
    pd.testing.assert_frame_equal(a[list(META_COLUMNS)], b[list(META_COLUMNS)])  # same rows, same order
    predicted = [c for c in a.columns if c not in META_COLUMNS and c != "expression"]
    assert a["valence"].notna().sum() == 12
    np.testing.assert_allclose(b[predicted].to_numpy(float), a[predicted].to_numpy(float), rtol=0, atol=1e-5)
    assert a["expression"].fillna("").equals(b["expression"].fillna(""))

    summary = json.loads((tmp_path / "two" / "predictions" / "summary.json").read_text())
    assert summary["timing"]["processes"] == 2 and one["timing"]["processes"] == 1
    for key in ("inputs", "frames", "faces", "frames_without_face", "status_counts", "bad_inputs"):
        assert summary[key] == one[key], key
    assert summary["status_counts"] == {"no_audio": 2, "no_face": 1, "ok": 2}
    inputs_a, inputs_b = (pd.read_csv(tmp_path / run / "predictions" / "inputs.csv") for run in ("one", "two"))
    pd.testing.assert_frame_equal(inputs_a, inputs_b)
    assert sorted(p.name for p in (tmp_path / "two" / "predictions" / "csv").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "predictions" / "csv").iterdir())  # fmt: skip

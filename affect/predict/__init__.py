"""``affect predict`` on a user's photos and videos: per-face CSVs, plots and an annotated video.

- :class:`MediaDataModule` (``affect/predict/datamodule.py``): inputs -> faces (MTCNN + 5-point
  alignment, IoU tracks) -> batches for frame or sequence models;
- :class:`MediaPredictionWriter` (``affect/predict/writer.py``): a ``BasePredictionWriter`` that
  writes ``predictions.csv`` (columns in ``affect/predict/columns.py``), one CSV per input,
  ``inputs.csv`` / ``summary.json``, timeline and contact-sheet PNGs and optional annotated MP4s;
- :func:`run_predict`: the same through the real CLI, for Python callers (``affect.demo``) and the short
  ``affect predict INPUT... [-o OUT] [--ckpt CKPT]`` (:mod:`affect.predict.command`); without a checkpoint
  it runs the default model that ships with the package (:mod:`affect.models.default`).

:data:`CONFIG` is the shipped ``predict/media`` config (in the checkout's ``experiments/`` or the
installed package, :mod:`affect.configs`).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from affect.configs import config_path
from affect.predict.datamodule import MediaDataModule
from affect.predict.writer import MediaPredictionWriter, summary_line

__all__ = ["CONFIG", "MediaDataModule", "MediaPredictionWriter", "run_predict", "summary_line"]

CONFIG = config_path("predict/media")


def run_predict(
    ckpt: str | Path | None,
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    extra_args: Sequence[str] = (),
    *,
    overwrite: bool = False,
) -> dict:
    """``affect predict --config predict/media --ckpt_path ckpt --data.init_args.inputs ...
    --trainer.default_root_dir out_dir`` in-process; returns the summary (also in
    ``<out_dir>/predictions/summary.json``, or where ``extra_args`` point the writer). ``extra_args`` are
    further CLI overrides, e.g. ``["--trainer.accelerator", "cpu", "--data.init_args.progress", "false"]``;
    ``overwrite`` lets the run replace the ``config.yaml`` of an earlier run in ``out_dir``.

    ``ckpt=None``: the default model (:func:`affect.models.default.default_checkpoint`, written to a
    temporary checkpoint file for the run); :class:`~affect.errors.DefaultModelError` when none is installed.
    """
    from affect.cli import build_cli

    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    with tempfile.TemporaryDirectory(prefix="affect-default-model-") as tmp:
        if ckpt is None:
            from affect.models.default import default_checkpoint, read_manifest

            ckpt = default_checkpoint(Path(tmp) / "default_model.ckpt")
            manifest = read_manifest()
            print(f"affect predict: the default model {manifest['name']!r} (licence: {manifest.get('licence')})",
                  file=sys.stderr)  # fmt: skip
        args = ["predict", "--config", str(CONFIG), "--ckpt_path", str(ckpt), "--data.init_args.inputs",
                _json_list(items), "--trainer.default_root_dir", str(out_dir), *extra_args]  # fmt: skip
        cli = build_cli(args, overwrite=overwrite)
    writers = [cb for cb in cli.trainer.callbacks if isinstance(cb, MediaPredictionWriter)]
    if not writers or writers[0].summary is None:
        raise RuntimeError("affect predict ran without a MediaPredictionWriter summary (check the config's callbacks)")
    return writers[0].summary


def _json_list(items: Sequence[str | Path]) -> str:
    import json

    return json.dumps([str(i) for i in items])

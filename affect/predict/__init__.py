"""``affect predict`` on a user's photos and videos: per-face CSVs, plots and an annotated video.

- :class:`MediaDataModule` (``affect/predict/datamodule.py``): inputs -> faces (MTCNN + 5-point
  alignment, IoU tracks) -> batches for frame or sequence models;
- :class:`MediaPredictionWriter` (``affect/predict/writer.py``): a ``BasePredictionWriter`` that
  writes ``predictions.csv`` (columns in ``affect/predict/columns.py``), one CSV per input,
  ``inputs.csv`` / ``summary.json``, timeline and contact-sheet PNGs and optional annotated MP4s;
- :func:`run_predict`: the same through the real CLI, for Python callers (``affect.demo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from affect.predict.datamodule import MediaDataModule
from affect.predict.summary import summary_line
from affect.predict.writer import MediaPredictionWriter

__all__ = ["CONFIG", "MediaDataModule", "MediaPredictionWriter", "run_predict", "summary_line"]

CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "predict" / "media.yaml"


def run_predict(
    ckpt: str | Path,
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    extra_args: Sequence[str] = (),
) -> dict:
    """``affect predict --config experiments/predict/media.yaml --ckpt_path ckpt --data.init_args.inputs ...
    --trainer.default_root_dir out_dir`` in-process; returns the summary (also in
    ``<out_dir>/predictions/summary.json``). ``extra_args`` are further CLI overrides, e.g.
    ``["--trainer.accelerator", "cpu", "--data.init_args.progress", "false"]``.
    """
    from affect.cli import build_cli

    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    args = ["predict", "--config", str(CONFIG), "--ckpt_path", str(ckpt),
            "--data.init_args.inputs", _json_list(items), "--trainer.default_root_dir", str(out_dir), *extra_args]  # fmt: skip
    cli = build_cli(args)
    writers = [cb for cb in cli.trainer.callbacks if isinstance(cb, MediaPredictionWriter)]
    if not writers or writers[0].summary is None:
        raise RuntimeError("affect predict ran without a MediaPredictionWriter summary (check the config's callbacks)")
    return writers[0].summary


def _json_list(items: Sequence[str | Path]) -> str:
    import json

    return json.dumps([str(i) for i in items])

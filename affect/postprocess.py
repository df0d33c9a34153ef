"""``affect postprocess``: the paper's post-processing of valence-arousal over ``affect predict``'s files.

The functions live in :mod:`affect.models.postprocess`; this command applies them to ``predictions.csv``
files (one row per face and frame, the columns of :mod:`affect.predict.columns`):

- several files of the same inputs (one per model) are fused at decision level, eq. 3 of the paper:
  per dimension, ``O = sum_n t^n o^n / sum_n t^n`` with ``t^n`` each model's validation CCC
  (``--ccc V,A`` once per file, in order); rows are matched by ``input``, ``frame`` and ``face_id``;
- ``--median-filter K`` then median-filters valence and arousal over each face track (``input`` +
  ``face_id``, ordered by ``frame``; odd ``K``, edges repeat the first / last value), the paper's
  "median filtering of the per frame predictions within each sequence" (Sec. V-B).

The other columns are the first file's. Rows without a face keep their empty predictions.

    affect postprocess out_a/predictions/predictions.csv out_b/predictions/predictions.csv \\
        --ccc 0.45,0.36 --ccc 0.40,0.38 --median-filter 5 -o fused.csv
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from affect.errors import ConfigError, InputFileError, MissingInputError
from affect.models.postprocess import decision_level_fusion, median_filter

VA = ("valence", "arousal")
KEYS = ("input", "frame", "face_id")


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A ``predictions.csv`` with valence / arousal columns (a one-line error otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"affect postprocess: {path} does not exist")
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise InputFileError(f"affect postprocess: {path} is not a CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in (*KEYS, *VA) if c not in df.columns]
    if missing:
        raise InputFileError(
            f"affect postprocess: {path} lacks the columns {missing}: post-processing needs the valence-arousal "
            "predictions of affect predict (a model with the va task)"
        )
    return df


def fuse(frames: Sequence[pd.DataFrame], ccc: Sequence[Sequence[float]], names: Sequence[str]) -> pd.DataFrame:
    """Eq. 3 over the files' valence / arousal, rows matched by :data:`KEYS`; the first file's other columns."""
    base = frames[0]
    keys = [tuple(r) for r in base[list(KEYS)].itertuples(index=False)]
    estimates = []
    for df, name in zip(frames, names, strict=True):
        other = df.set_index(list(KEYS))
        if len(other) != len(base) or not other.index.is_unique or not other.index.isin(keys).all():
            raise InputFileError(
                f"affect postprocess: {name} does not hold the same rows (input, frame, face_id) as {names[0]}: "
                "fuse the predictions of one affect predict input list"
            )
        estimates.append(torch.from_numpy(other.loc[keys, list(VA)].to_numpy(np.float64)))
    try:
        fused = decision_level_fusion(estimates, ccc)
    except ValueError as err:
        raise ConfigError(f"affect postprocess: --ccc: {err}") from None
    out = base.copy()
    out[list(VA)] = fused.numpy()
    return out


def filter_tracks(df: pd.DataFrame, kernel: int) -> pd.DataFrame:
    """Median filter of valence / arousal along each face track (rows with a face; ordered by frame)."""
    out = df.copy()
    faces = out[out["face_id"] >= 0].sort_values("frame", kind="stable")
    for _, track in faces.groupby(["input", "face_id"], sort=False):
        values = torch.from_numpy(track[list(VA)].to_numpy(np.float64))[None]
        out.loc[track.index, list(VA)] = median_filter(values, kernel)[0].numpy()
    return out


def _ccc(text: str) -> list[float]:
    try:
        v, a = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected V,A (two numbers), got {text!r}") from None
    return [v, a]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="affect postprocess", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("predictions", nargs="+", help="predictions.csv files of affect predict (several: fused, eq. 3)")
    p.add_argument("-o", "--out", required=True, help="the post-processed CSV to write")
    p.add_argument("--ccc", type=_ccc, action="append", default=[], metavar="V,A",
                   help="a file's validation CCC (valence,arousal): the eq. 3 weight; once per file, in order")
    p.add_argument("--median-filter", type=int, default=1, metavar="K", help="odd window of the median filter (1: off)")
    args = p.parse_args(argv)
    if args.median_filter < 1 or args.median_filter % 2 == 0:
        raise ConfigError(f"affect postprocess: --median-filter must be a positive odd number; got {args.median_filter}")
    if len(args.predictions) > 1 and len(args.ccc) != len(args.predictions):
        raise ConfigError(
            f"affect postprocess: fusing {len(args.predictions)} files needs one --ccc V,A per file (their validation "
            f"CCCs, eq. 3's weights); got {len(args.ccc)}"
        )
    frames = [read_predictions(f) for f in args.predictions]
    df = fuse(frames, args.ccc, args.predictions) if len(frames) > 1 else frames[0]
    if args.median_filter > 1:
        df = filter_tracks(df, args.median_filter)
    out = Path(args.out)
    if out.resolve() in {Path(f).resolve() for f in args.predictions}:
        raise ConfigError(f"affect postprocess: -o {out} is one of the inputs; write to another file")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(out)
    print(f"affect postprocess: {len(df)} rows from {len(frames)} file(s) -> {out}")
    return 0

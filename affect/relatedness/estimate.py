"""Relatedness from data: ``p(AU | emotion)`` estimated from a corpus with EXPR and AU labels.

This is how the paper built the empirical column of Table V ("the percentage of images
annotated with the specific expression in which the AU was activated", from Aff-Wild2). For
each emotion e and AU i::

    w(e, i) = #{frames with expr = e, AU_i annotated and active} / #{frames with expr = e, AU_i annotated}

Unannotated AUs (NaN in the manifest) are left out of both counts, never counted as inactive.
AUs with ``w >= min_weight`` are kept (the paper's table lists only notable AUs); with
``prototypical_threshold`` set, AUs at or above it are written as prototypical (weight 1),
as in the cognitive-study column.

Command line (``affect relatedness``)::

    affect relatedness --corpus affwild2 --root $AFFECT_DATA/Aff-Wild2 --out affwild2_mine.json
    affect relatedness --manifest frames.csv --out mine.json --min-weight 0.1

The output file is accepted by every loss and by ``load_relatedness(path)``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.manifest import AU_COLUMNS, validate_manifest
from affect.labels import AU_SET, EXPR_CLASSES
from affect.relatedness import Relatedness


def au_rates_by_emotion(manifest: pd.DataFrame, au_set: Sequence[int] = AU_SET) -> tuple[np.ndarray, np.ndarray]:
    """``(rates [7, A], counts [7, A])``: activation rate of each AU among frames of each emotion.

    ``counts`` is the number of frames with that emotion and that AU annotated; rates with a
    zero count are NaN.
    """
    cols = [f"AU{a}" for a in au_set]
    missing = [c for c in cols if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks AU columns {missing}")
    expr = manifest["expr"].to_numpy()
    au = manifest[cols].to_numpy(np.float64)
    rates = np.full((len(EXPR_CLASSES), len(cols)), np.nan)
    counts = np.zeros((len(EXPR_CLASSES), len(cols)), np.int64)
    for e in range(len(EXPR_CLASSES)):
        rows = au[expr == e]
        annotated = np.isfinite(rows)
        counts[e] = annotated.sum(axis=0)
        active = np.where(annotated, rows, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[e] = np.where(counts[e] > 0, active / np.maximum(counts[e], 1), np.nan)
    return rates, counts


def estimate_relatedness(
    manifest: pd.DataFrame,
    name: str = "estimated",
    au_set: Sequence[int] = AU_SET,
    min_weight: float = 0.1,
    prototypical_threshold: float | None = None,
    min_count: int = 1,
) -> Relatedness:
    """A :class:`Relatedness` estimated from every row with both an EXPR label and AU labels.

    Neutral gets no related AUs (as in Table V); rates from fewer than ``min_count`` frames
    are not trusted and left out. Weights are rounded to 2 decimals, as printed in Table V.
    """
    rates, counts = au_rates_by_emotion(manifest, au_set)
    both = (manifest["expr"].to_numpy() >= 0) & np.isfinite(manifest[[f"AU{a}" for a in au_set]].to_numpy()).any(1)
    if not both.any():
        raise ValueError("no row has both an EXPR label and AU labels: nothing to estimate from")
    prototypical: dict[str, tuple[int, ...]] = {}
    observational: dict[str, dict[int, float]] = {}
    for e, emotion in enumerate(EXPR_CLASSES):
        if emotion == "Neutral":
            continue
        order = np.argsort(-np.nan_to_num(rates[e], nan=-1.0), kind="stable")
        proto, obs = [], {}
        for i in order:
            w = rates[e, i]
            if counts[e, i] < min_count or not np.isfinite(w) or w < min_weight:
                continue
            if prototypical_threshold is not None and w >= prototypical_threshold:
                proto.append(int(au_set[i]))
            else:
                obs[int(au_set[i])] = round(float(w), 2)
        prototypical[emotion], observational[emotion] = tuple(proto), obs
    source = (
        f"estimated from {int(both.sum())} frames with EXPR and AU labels "
        f"(corpora: {', '.join(sorted(manifest.loc[both, 'corpus'].astype(str).unique()))}); "
        f"min_weight={min_weight}, prototypical_threshold={prototypical_threshold}"
    )
    return Relatedness(name=name, source=source, prototypical=prototypical, observational=observational)


def main(argv: Sequence[str] | None = None) -> int:
    """``affect relatedness``: estimate p(AU | emotion) from a corpus and write a relatedness JSON."""
    parser = argparse.ArgumentParser(prog="affect relatedness", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", help="corpus slug (affect/data/corpora/<slug>.py); needs --root")
    source.add_argument("--manifest", help="a manifest CSV (affect.data.manifest schema)")
    parser.add_argument("--root", help="corpus root in its native layout")
    parser.add_argument("--out", required=True, help="relatedness JSON to write")
    parser.add_argument("--min-weight", type=float, default=0.1)
    parser.add_argument("--prototypical-threshold", type=float, default=None)
    parser.add_argument("--min-count", type=int, default=20)
    args = parser.parse_args(argv)
    if args.corpus:
        if not args.root:
            parser.error("--corpus needs --root")
        from affect.data.corpora import manifest_parser

        manifest, report = manifest_parser(args.corpus)(args.root)
        print(report)
    else:
        manifest = pd.read_csv(args.manifest)
    manifest = validate_manifest(manifest)
    missing = [c for c in AU_COLUMNS if c not in manifest.columns]
    if missing:
        parser.error(f"manifest lacks AU columns {missing}")
    rel = estimate_relatedness(
        manifest, name=Path(args.out).stem, min_weight=args.min_weight,
        prototypical_threshold=args.prototypical_threshold, min_count=args.min_count,
    )
    Path(args.out).write_text(json.dumps(rel.to_json(), indent=2))
    for emotion in EXPR_CLASSES:
        if rel.related(emotion):
            pretty = ", ".join(f"{a} ({w:.2f})" for a, w in rel.related(emotion).items())
            print(f"{emotion:10s} {pretty}")
    print(f"wrote {args.out}")
    return 0

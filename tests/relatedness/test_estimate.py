"""Relatedness from data: recovers the table the labels were drawn from; masks are not negatives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from affect.data.manifest import AU_COLUMNS
from affect.labels import AU_SET, EXPR_CLASSES
from affect.relatedness import load_relatedness
from affect.relatedness.estimate import au_rates_by_emotion, estimate_relatedness, main


def draw_manifest(table: str, n_per_emotion: int, seed: int = 0, mask_rate: float = 0.0) -> pd.DataFrame:
    """Frames whose AUs are Bernoulli(w) draws from a relatedness table (w = 1 for prototypical)."""
    rng = np.random.default_rng(seed)
    rel = load_relatedness(table)
    rows = []
    for e, emotion in enumerate(EXPR_CLASSES):
        related = rel.related(emotion)
        p = np.array([related.get(a, 0.0) for a in AU_SET])
        au = (rng.random((n_per_emotion, len(AU_SET))) < p).astype(float)
        au[rng.random(au.shape) < mask_rate] = np.nan
        for row in au:
            rows.append({"path": "x", "corpus": "drawn", "expr": e, **dict(zip(AU_COLUMNS, row, strict=True))})
    return pd.DataFrame(rows)


def test_recovers_the_affwild2_table():
    df = draw_manifest("affwild2", 3000, mask_rate=0.3)
    est = estimate_relatedness(df, min_weight=0.05)
    truth = load_relatedness("affwild2")
    for emotion in EXPR_CLASSES[1:]:
        want, got = truth.related(emotion), est.related(emotion)
        assert set(got) == set(want), emotion
        for au, w in want.items():
            assert got[au] == pytest.approx(w, abs=0.04), (emotion, au)
    assert est.related("Neutral") == {}


def test_prototypical_threshold_recovers_du2014_split():
    df = draw_manifest("du2014", 2000, seed=1)
    est = estimate_relatedness(df, min_weight=0.2, prototypical_threshold=0.99)
    truth = load_relatedness("du2014")
    for emotion in EXPR_CLASSES[1:]:
        assert set(est.prototypical[emotion]) == set(truth.prototypical[emotion]), emotion
        in_set = {a: w for a, w in truth.observational[emotion].items() if a in AU_SET}
        assert set(est.observational[emotion]) == set(in_set), emotion


def test_unannotated_aus_are_not_counted_as_inactive():
    df = pd.DataFrame([
        {"path": "x", "corpus": "c", "expr": 4, "AU12": 1.0},
        {"path": "x", "corpus": "c", "expr": 4, "AU12": np.nan, "AU6": 0.0},
        {"path": "x", "corpus": "c", "expr": 4, "AU12": 0.0},
    ])
    df = df.reindex(columns=[*df.columns, *[c for c in AU_COLUMNS if c not in df.columns]])
    rates, counts = au_rates_by_emotion(df)
    i12 = AU_SET.index(12)
    assert counts[4, i12] == 2 and rates[4, i12] == 0.5


def test_no_overlapping_labels_raises():
    df = pd.DataFrame({"path": ["x"], "corpus": ["c"], "expr": [3], **{c: [np.nan] for c in AU_COLUMNS}})
    with pytest.raises(ValueError, match="no row has both an EXPR label and AU labels"):
        estimate_relatedness(df)


def test_command_writes_a_file_the_losses_accept(tmp_path, capsys):
    csv = tmp_path / "frames.csv"
    draw_manifest("affwild2", 400, seed=2).to_csv(csv, index=False)
    out = tmp_path / "mine.json"
    assert main(["--manifest", str(csv), "--out", str(out), "--min-weight", "0.05"]) == 0
    assert "Happiness" in capsys.readouterr().out
    rel = load_relatedness(str(out))
    assert set(rel.related("Happiness")) == {12, 25, 6, 7, 10}
    assert json.loads(out.read_text())["source"].startswith("estimated from 2800 frames")

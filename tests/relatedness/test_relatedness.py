"""Table V, both columns, number by number; derived p(AU | emotion) tensors; compound classes."""

from __future__ import annotations

import json
import re

import pytest
import torch

from affect.labels import AU_SET, EXPR_CLASSES, RAFDB_COMPOUND_CLASSES
from affect.relatedness import load_compound_classes, load_relatedness, relatedness_from_dict

# Table V as typeset in the paper (one line per emotion), parsed below independently of tables.json.
TABLE_V = """
happiness | 12, 25       | 6 (0.51)                               | 12 (0.82), 25 (0.7), 6 (0.57), 7 (0.83), 10 (0.63)
sadness   | 4, 15        | 1 (0.6), 6 (0.5), 11 (0.26), 17 (0.67) | 4 (0.53), 15 (0.42), 1 (0.31), 7 (0.13), 17 (0.1)
fear      | 1, 4, 20, 25 | 2 (0.57), 5 (0.63), 26 (0.33)          | 1 (0.52), 4 (0.4), 25 (0.85), 5 (0.38), 7 (0.57), 10 (0.57)
anger     | 4, 7, 24     | 10 (0.26), 17 (0.52), 23 (0.29)        | 4 (0.65), 7 (0.45), 25 (0.4), 10 (0.33), 9 (0.15)
surprise  | 1, 2, 25, 26 | 5 (0.66)                               | 1 (0.38), 2 (0.37), 25 (0.85), 26 (0.3), 5 (0.5), 7 (0.2)
disgust   | 9, 10, 17    | 4 (0.31), 24 (0.26)                    | 9 (0.21), 10 (0.85), 17 (0.23), 4 (0.6), 7 (0.75), 25 (0.8)
"""
NAMES = {"happiness": "Happiness", "sadness": "Sadness", "fear": "Fear", "anger": "Anger",
         "surprise": "Surprise", "disgust": "Disgust"}


def weighted(cell: str) -> dict[int, float]:
    return {int(a): float(w) for a, w in re.findall(r"(\d+) \(([\d.]+)\)", cell)}


def parsed_table():
    rows = {}
    for line in TABLE_V.strip().splitlines():
        name, proto, obs, emp = (c.strip() for c in line.split("|"))
        rows[NAMES[name]] = ([int(a) for a in proto.split(",")], weighted(obs), weighted(emp))
    return rows


@pytest.mark.parametrize("emotion", list(NAMES.values()))
def test_du2014_column_matches_table_v(emotion):
    proto, obs, _ = parsed_table()[emotion]
    rel = load_relatedness("du2014")
    assert list(rel.prototypical[emotion]) == proto
    assert rel.observational[emotion] == obs
    assert rel.related(emotion) == {**{a: 1.0 for a in proto}, **obs}


@pytest.mark.parametrize("emotion", list(NAMES.values()))
def test_affwild2_column_matches_table_v(emotion):
    _, _, emp = parsed_table()[emotion]
    rel = load_relatedness("affwild2")
    assert rel.related(emotion) == emp


def test_sadness_row_reconstruction_is_flagged():
    rel = load_relatedness("affwild2")
    assert rel.reconstructed["Sadness"]["au"] == 4
    assert "lost" in rel.reconstructed["Sadness"]["note"]


def test_neutral_has_no_related_aus():
    for name in ("du2014", "affwild2"):
        rel = load_relatedness(name)
        assert rel.related("Neutral") == {}
        assert rel.p_au_given_emotion(weighted=True)[EXPR_CLASSES.index("Neutral")].sum() == 0


def test_p_au_given_emotion_binary_and_weighted():
    rel = load_relatedness("du2014")
    with pytest.warns(UserWarning, match=r"AU11 \(Sadness\) not in the model's AU set"):
        binary = rel.p_au_given_emotion()
    with pytest.warns(UserWarning):
        w = rel.p_au_given_emotion(weighted=True)
    happy = EXPR_CLASSES.index("Happiness")
    col = {a: i for i, a in enumerate(AU_SET)}
    assert binary[happy, col[12]] == 1 and binary[happy, col[6]] == 1 and binary[happy].sum() == 3
    assert w[happy, col[6]] == pytest.approx(0.51) and w[happy, col[25]] == 1.0
    # AU2: prototypical for surprise, observational for fear (the paper's eq. 8 example)
    assert binary[:, col[2]].nonzero().flatten().tolist() == sorted(
        [EXPR_CLASSES.index("Surprise"), EXPR_CLASSES.index("Fear")]
    )
    # a custom AU set keeps only its AUs, in its order
    small = load_relatedness("affwild2").p_au_given_emotion(au_set=(25, 12), weighted=True)
    assert small[happy].tolist() == pytest.approx([0.7, 0.82])
    assert binary.shape == (7, 17) and binary.dtype == torch.float32


def test_round_trip_through_json(tmp_path):
    rel = load_relatedness("affwild2")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(rel.to_json()))
    again = load_relatedness(str(path))
    for e in EXPR_CLASSES:
        assert again.related(e) == rel.related(e)


def test_bad_inputs_raise(tmp_path):
    with pytest.raises(ValueError, match="must be one of .* or a JSON file"):
        load_relatedness("nonexistent")
    with pytest.raises(ValueError, match="unknown expression 'Joy'"):
        relatedness_from_dict("x", {"emotions": {"Joy": {"prototypical": [12]}}})
    with pytest.raises(ValueError, match=r"weights must lie in \[0, 1\]"):
        relatedness_from_dict("x", {"emotions": {"Happiness": {"observational": {"6": 51}}}})


def test_compound_classes():
    raf = load_compound_classes(RAFDB_COMPOUND_CLASSES)
    assert [c.name for c in raf] == list(RAFDB_COMPOUND_CLASSES)
    hs = raf[0]
    assert hs.aus == (1, 2, 12, 25) and hs.components == ("Happiness", "Surprise") and hs.positive_valence
    assert [c.name for c in raf if c.positive_valence] == ["Happily Surprised", "Happily Disgusted"]
    everything = {c.name: c.aus for c in load_compound_classes()}
    assert len(everything) == 15 and everything["Awed"] == (1, 2, 5, 25) and everything["Sadly Angry"] == (4, 15)
    with pytest.raises(ValueError, match="not in the table"):
        load_compound_classes(["Joyfully Bored"])

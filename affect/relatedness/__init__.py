"""Emotion-AU relatedness (paper Table V) as data, loaded by name.

Two basic-emotion tables ship in ``tables.json``:

- ``du2014``: the cognitive-psychological study [38]: prototypical AUs (weight 1) and
  observational AUs with the fraction of annotators that saw them;
- ``affwild2``: the empirical table inferred on Aff-Wild2: related AUs with the fraction of
  frames in which they were active (no prototypical/observational split). The sadness row lost
  its first AU number in our copy of the paper; AU4 is used and flagged in ``reconstructed``.

A relatedness can also be loaded from a JSON file of the same shape (``affect relatedness``
writes one, estimated from any corpus that has both EXPR and AU labels).

Derived tensors (eq. 8's ``p(y_au^i | y_emo)``) are built over a model's AU set; AUs outside
the set (e.g. AU11 for sadness in ``du2014``) are dropped with a warning.

>>> rel = load_relatedness("du2014")
>>> rel.related("Happiness")
{12: 1.0, 25: 1.0, 6: 0.51}
>>> p = rel.p_au_given_emotion(weighted=False)   # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch

from affect.labels import AU_SET, EXPR_CLASSES, NUM_EXPR, expr_index

TABLES_PATH = Path(__file__).with_name("tables.json")
BUILTIN = ("du2014", "affwild2")


@dataclass(frozen=True)
class Relatedness:
    """Per-emotion related AUs: ``prototypical`` (weight 1) and weighted ``observational`` ones.

    Neutral has no related AUs in either table (an all-zero row).
    """

    name: str
    source: str
    prototypical: dict[str, tuple[int, ...]]
    observational: dict[str, dict[int, float]]
    reconstructed: dict[str, dict] = field(default_factory=dict)

    def related(self, emotion: str) -> dict[int, float]:
        """``{au: w}`` for every AU related to ``emotion`` (prototypical first, weight 1)."""
        out = {au: 1.0 for au in self.prototypical.get(emotion, ())}
        out.update(self.observational.get(emotion, {}))
        return out

    def p_au_given_emotion(self, au_set: Sequence[int] = AU_SET, weighted: bool = False) -> torch.Tensor:
        """``[7, len(au_set)]`` matrix of ``p(AU_i | emotion)`` rows in the canonical EXPR order.

        ``weighted=False`` is eq. 8 as printed (1 for every related AU); ``weighted=True`` is
        the variant of footnote 3 (``w`` for observational AUs, 1 for prototypical ones).
        AUs not in ``au_set`` are dropped with one warning listing them.
        """
        position = {int(a): i for i, a in enumerate(au_set)}
        table = torch.zeros(NUM_EXPR, len(au_set))
        dropped: list[str] = []
        for emotion in EXPR_CLASSES:
            for au, w in self.related(emotion).items():
                if au not in position:
                    dropped.append(f"AU{au} ({emotion})")
                    continue
                table[expr_index(emotion), position[au]] = w if weighted else 1.0
        if dropped:
            warnings.warn(
                f"relatedness {self.name!r}: {', '.join(dropped)} not in the model's AU set {list(au_set)}; dropped",
                stacklevel=2,
            )
        return table

    def to_json(self) -> dict:
        """The ``tables.json`` entry shape (round-trips through :func:`relatedness_from_dict`)."""
        emotions = {
            e: {
                "prototypical": list(self.prototypical.get(e, ())),
                "observational": {str(a): w for a, w in self.observational.get(e, {}).items()},
            }
            for e in EXPR_CLASSES
            if self.related(e)
        }
        out = {"source": self.source, "emotions": emotions}
        if self.reconstructed:
            out["reconstructed"] = self.reconstructed
        return out


def relatedness_from_dict(name: str, entry: dict) -> Relatedness:
    """Build a :class:`Relatedness` from one ``tables.json``-shaped entry, validating it."""
    prototypical: dict[str, tuple[int, ...]] = {}
    observational: dict[str, dict[int, float]] = {}
    for emotion, row in entry["emotions"].items():
        expr_index(emotion)  # raises on an unknown emotion name
        prototypical[emotion] = tuple(int(a) for a in row.get("prototypical", []))
        observational[emotion] = {int(a): float(w) for a, w in row.get("observational", {}).items()}
        bad = {a: w for a, w in observational[emotion].items() if not 0.0 <= w <= 1.0}
        if bad:
            raise ValueError(f"relatedness {name!r}, {emotion}: weights must lie in [0, 1], got {bad}")
    return Relatedness(
        name=name,
        source=entry.get("source", ""),
        prototypical=prototypical,
        observational=observational,
        reconstructed=entry.get("reconstructed", {}),
    )


@cache
def _tables() -> dict:
    return json.loads(TABLES_PATH.read_text())


def load_relatedness(name_or_path: str) -> Relatedness:
    """Load ``du2014`` / ``affwild2`` by name, or a relatedness JSON file by path.

    A file may hold one entry (``{"source", "emotions"}``) or a mapping of names to entries,
    in which case it must hold exactly one.
    """
    if name_or_path in BUILTIN:
        return relatedness_from_dict(name_or_path, _tables()[name_or_path])
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"relatedness must be one of {BUILTIN} or a JSON file; {name_or_path!r} is neither")
    data = json.loads(path.read_text())
    if "emotions" not in data:
        if len(data) != 1:
            raise ValueError(f"{path}: expected one relatedness entry, found {sorted(data)}")
        ((_, data),) = data.items()
    return relatedness_from_dict(path.stem, data)


@dataclass(frozen=True)
class CompoundClass:
    """A compound expression: its prototypical AUs and its two basic components (eq. 10)."""

    name: str
    aus: tuple[int, ...]
    components: tuple[str, str]
    positive_valence: bool


def load_compound_classes(names: Sequence[str] | None = None, path: str | None = None) -> list[CompoundClass]:
    """Compound classes from Du et al. 2014 (``compound_du2014``), in the order of ``names``.

    ``names`` defaults to every class in the table; pass ``labels.RAFDB_COMPOUND_CLASSES`` for
    RAF-DB's 11. ``path`` points to a JSON file of the same shape to override the table.
    """
    entry = json.loads(Path(path).read_text()) if path else _tables()["compound_du2014"]
    classes = entry["classes"]
    names = list(classes) if names is None else list(names)
    missing = [n for n in names if n not in classes]
    if missing:
        raise ValueError(f"compound classes {missing} are not in the table; known: {sorted(classes)}")
    positive = set(entry.get("positive_valence", []))
    out = []
    for n in names:
        comps = tuple(classes[n]["components"])
        for c in comps:
            expr_index(c)
        out.append(CompoundClass(n, tuple(int(a) for a in classes[n]["aus"]), comps, n in positive))
    return out

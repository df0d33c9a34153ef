"""Label sampling for synthetic faces: expression -> AUs (paper Table V) and VA (circumplex).

- **AUs** (:func:`sample_labels`): an expression activates every prototypical AU of its
  Table V row (``load_relatedness(relatedness)``) and each observational AU with probability
  ``w``; every other AU fires spuriously with probability :data:`SPURIOUS_RATE` (Neutral:
  :data:`NEUTRAL_SPURIOUS_RATE`, i.e. almost nothing). AUs outside ``labels.AU_SET`` (AU11 of
  sadness in ``du2014``) are skipped. With ``relatedness="affwild2"`` every listed AU is
  observational with its empirical weight.
- **Intensities**: an active AU gets ``U(0.55, 1.0) * (0.85 + 0.2 * arousal)``, clipped to
  [0.4, 1] (arousal scales overall intensity); inactive AUs are 0. ``au`` is the 0/1
  occurrence (``au_intensity > 0``).
- **VA**: the expression's point on the circumplex (:data:`CIRCUMPLEX`, after Russell 1980
  and the usual placement of the basic emotions in the VA plane) plus ``N(0, VA_NOISE)``,
  clipped to [-1, 1].
- **Compound classes** (``load_compound_classes()``, e.g. "Happily Surprised"): the union of
  the compound's own AUs (always on) and both components' AUs (prototypical on,
  observational with ``w``); VA = mean of the two components' circumplex points + noise;
  ``expr = -1`` (no basic label; the components are in ``load_compound_classes``).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from affect.labels import AU_SET, EXPR_CLASSES, NUM_AU, NUM_EXPR, expr_index
from affect.relatedness import CompoundClass, Relatedness, load_compound_classes, load_relatedness

# (valence, arousal) centre of each basic expression, canonical EXPR order.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "Neutral": (0.0, 0.0),
    "Anger": (-0.6, 0.6),
    "Disgust": (-0.7, 0.3),
    "Fear": (-0.6, 0.7),
    "Happiness": (0.7, 0.5),
    "Sadness": (-0.7, -0.4),
    "Surprise": (0.2, 0.8),
}
VA_NOISE = 0.15
SPURIOUS_RATE = 0.03
NEUTRAL_SPURIOUS_RATE = 0.01
_POS = {au: k for k, au in enumerate(AU_SET)}


@cache
def _relatedness(name: str) -> Relatedness:
    return load_relatedness(name)


@cache
def _compounds() -> dict[str, CompoundClass]:
    return {c.name: c for c in load_compound_classes()}


def _activate(rel: Relatedness, emotion: str, on: np.ndarray, rng: np.random.Generator) -> None:
    for au in rel.prototypical.get(emotion, ()):
        if au in _POS:
            on[_POS[au]] = True
    for au, w in rel.observational.get(emotion, {}).items():
        draw = rng.random()  # drawn for every listed AU so streams do not depend on AU_SET
        if au in _POS and draw < w:
            on[_POS[au]] = True


def sample_labels(
    rng: np.random.Generator,
    expr: int | None = None,
    relatedness: str = "du2014",
    compound: str | None = None,
) -> dict:
    """Draw one face's labels: expression (or compound), AU occurrence/intensity and VA.

    Returns ``{"expr": int (0..6, -1 for compounds), "au": float32 [17] 0/1,
    "au_intensity": float32 [17] in [0, 1], "valence": float, "arousal": float,
    "compound": str | None}``. ``expr=None`` draws a class uniformly.

    >>> lab = sample_labels(np.random.default_rng(0), expr=4)   # Happiness: AU12, AU25 always on
    >>> lab["expr"], lab["au"][[8, 15]].tolist()
    (4, [1.0, 1.0])
    """
    rel = _relatedness(relatedness)
    on = np.zeros(NUM_AU, bool)
    if compound is not None:
        if expr is not None:
            raise ValueError(f"give expr or compound, not both (got expr={expr}, compound={compound!r})")
        table = _compounds()
        if compound not in table:
            raise ValueError(f"unknown compound class {compound!r}; known: {sorted(table)}")
        cls = table[compound]
        for au in cls.aus:
            if au in _POS:
                on[_POS[au]] = True
        for comp in cls.components:
            _activate(rel, comp, on, rng)
        centre = np.mean([CIRCUMPLEX[c] for c in cls.components], axis=0)
        label = -1
        rate = SPURIOUS_RATE
    else:
        label = int(rng.integers(NUM_EXPR)) if expr is None else int(expr)
        if not 0 <= label < NUM_EXPR:
            raise ValueError(f"expr must be in 0..{NUM_EXPR - 1} (canonical order {EXPR_CLASSES}); got {expr}")
        emotion = EXPR_CLASSES[label]
        _activate(rel, emotion, on, rng)
        centre = np.asarray(CIRCUMPLEX[emotion])
        rate = NEUTRAL_SPURIOUS_RATE if label == expr_index("Neutral") else SPURIOUS_RATE
    spurious = rng.random(NUM_AU) < rate
    on |= spurious
    va = np.clip(centre + rng.normal(0.0, VA_NOISE, 2), -1.0, 1.0)
    gain = 0.85 + 0.2 * va[1]
    intensity = np.clip(rng.uniform(0.55, 1.0, NUM_AU) * gain, 0.4, 1.0) * on
    return {
        "expr": label,
        "au": on.astype(np.float32),
        "au_intensity": intensity.astype(np.float32),
        "valence": float(va[0]),
        "arousal": float(va[1]),
        "compound": compound,
    }


def expected_au_rates(relatedness: str = "du2014") -> np.ndarray:
    """``[7, 17]`` expected AU occurrence rates per expression under :func:`sample_labels`.

    ``P(on) = 1`` (prototypical), ``w + (1 - w) * r`` (observational), ``r`` otherwise, with
    ``r`` the spurious rate. Used by the tests as the Table V reference.
    """
    rel = _relatedness(relatedness)
    out = np.zeros((NUM_EXPR, NUM_AU))
    for e, emotion in enumerate(EXPR_CLASSES):
        r = NEUTRAL_SPURIOUS_RATE if emotion == "Neutral" else SPURIOUS_RATE
        p = np.full(NUM_AU, r)
        for au, w in rel.observational.get(emotion, {}).items():
            if au in _POS:
                p[_POS[au]] = w + (1 - w) * r
        for au in rel.prototypical.get(emotion, ()):
            if au in _POS:
                p[_POS[au]] = 1.0
        out[e] = p
    return out

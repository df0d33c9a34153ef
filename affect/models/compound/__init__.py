"""Compound expressions: zero-shot scoring (eq. 10) and few-shot fine-tuning of FaceBehaviorNet
(Sec. VI-B, Table VI).

- :mod:`affect.models.compound.zero_shot`: ``compound_scores``, ``predict_compound``,
  ``compound_au_table`` (plain torch).
- :mod:`affect.models.compound.lightning_model`: ``ZeroShotCompound``, ``CompoundFineTune``,
  ``CompoundHead``, ``load_facebehaviornet``, ``resolve_compound_classes`` (loaded on first access, so that the plain scoring
  imports without Lightning).
"""

from affect.models.compound.zero_shot import compound_au_table, compound_scores, predict_compound

_LIGHTNING = (
    "COMPOUND_METRICS",
    "CompoundFineTune",
    "CompoundHead",
    "ZeroShotCompound",
    "load_facebehaviornet",
    "resolve_compound_classes",
)

__all__ = ["compound_au_table", "compound_scores", "predict_compound", *_LIGHTNING]


def __getattr__(name: str):
    if name in _LIGHTNING:
        from affect.models.compound import lightning_model

        return getattr(lightning_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

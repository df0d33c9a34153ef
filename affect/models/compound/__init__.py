"""Compound expressions: zero-shot scoring (eq. 10) and few-shot fine-tuning of FaceBehaviorNet
(Sec. VI-B, Table VI).

- :mod:`affect.models.compound.zero_shot`: ``compound_scores``, ``predict_compound``,
  ``compound_au_table``, ``resolve_compound_classes`` (plain torch).
- :mod:`affect.models.compound.torch_model`: ``CompoundHead``, ``load_facebehaviornet`` (plain torch).
- :mod:`affect.models.compound.lightning_model`: ``ZeroShotCompound``, ``CompoundFineTune`` (loaded
  on first access, so that the plain scoring imports without Lightning).
"""

from affect.models.compound.torch_model import CompoundHead, load_facebehaviornet
from affect.models.compound.zero_shot import (
    compound_au_table,
    compound_scores,
    predict_compound,
    resolve_compound_classes,
)

_LIGHTNING = ("COMPOUND_METRICS", "CompoundFineTune", "ZeroShotCompound")

__all__ = ["CompoundHead", "compound_au_table", "compound_scores", "load_facebehaviornet", "predict_compound",
           "resolve_compound_classes", *_LIGHTNING]  # fmt: skip


def __getattr__(name: str):
    if name in _LIGHTNING:
        from affect.models.compound import lightning_model

        return getattr(lightning_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

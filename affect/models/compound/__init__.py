"""Compound expressions: zero-shot scoring (eq. 10) and few-shot fine-tuning of FaceBehaviorNet."""

from affect.models.compound.zero_shot import compound_au_table, compound_scores, predict_compound

__all__ = ["compound_au_table", "compound_scores", "predict_compound"]

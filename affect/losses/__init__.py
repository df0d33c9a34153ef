"""Losses of the paper: per-task terms (eq. 4-7) and the FaceBehaviorNet coupling losses (Sec. VI-B).

>>> from affect.losses import MultiTaskLoss, ccc_loss, expr_ce_loss, au_bce_loss
"""

from affect.losses.coupling import (
    DM_FORMS,
    CouplingTables,
    DMForm,
    DMGrad,
    au_mixture,
    co_annotate,
    co_annotate_tables,
    co_annotate_with,
    distribution_matching_loss,
    distribution_matching_with,
    dm_au_weights,
    relatedness_tables,
    soft_co_annotation_loss,
    soft_co_annotation_targets,
    soft_co_annotation_targets_tables,
    soft_co_annotation_targets_with,
)
from affect.losses.multitask import MultiTaskLoss
from affect.losses.task import (
    au_bce_loss,
    ccc_loss,
    ccc_per_dim,
    expr_ce_loss,
    soft_cross_entropy,
    zero_like_graph,
)

__all__ = [
    "DM_FORMS",
    "CouplingTables",
    "DMForm",
    "DMGrad",
    "MultiTaskLoss",
    "au_bce_loss",
    "au_mixture",
    "ccc_loss",
    "ccc_per_dim",
    "co_annotate",
    "co_annotate_tables",
    "co_annotate_with",
    "distribution_matching_loss",
    "distribution_matching_with",
    "dm_au_weights",
    "expr_ce_loss",
    "relatedness_tables",
    "soft_co_annotation_loss",
    "soft_co_annotation_targets",
    "soft_co_annotation_targets_tables",
    "soft_co_annotation_targets_with",
    "soft_cross_entropy",
    "zero_like_graph",
]

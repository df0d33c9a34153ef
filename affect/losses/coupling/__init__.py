"""Coupling losses of FaceBehaviorNet (paper Sec. VI-B), driven by the relatedness of Table V.

- :mod:`~affect.losses.coupling.tables` — :func:`relatedness_tables` and :class:`CouplingTables`,
  the ``[7, A]`` relatedness tables over the model's AU set that every coupling loss reads;
- :mod:`~affect.losses.coupling.co_annotation` — :func:`co_annotate`, VI-B.1, co-annotation
  EXPR -> AU and AU -> EXPR;
- :mod:`~affect.losses.coupling.distribution_matching` — :func:`au_mixture` /
  :func:`distribution_matching_loss`, VI-B.2, eq. 8 and eq. 9 (as printed, or the per-AU Bernoulli
  KL of footnote 4 over related AUs: :data:`DM_FORMS`);
- :mod:`~affect.losses.coupling.soft_co_annotation` — :func:`soft_co_annotation_targets` /
  :func:`soft_co_annotation_loss`, VI-B.3.

>>> related, weights = relatedness_tables("du2014", au_set=(1, 2, 6, 12, 25))
>>> related[4].tolist(), [round(w, 2) for w in weights[4].tolist()]   # Happiness: AU12, AU25; AU6 w=0.51
([0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.51, 1.0, 1.0])
"""

from affect.losses.coupling.co_annotation import co_annotate, co_annotate_tables, co_annotate_with
from affect.losses.coupling.distribution_matching import (
    DM_FORMS,
    DMAUs,
    DMForm,
    DMGrad,
    DMReduction,
    au_mixture,
    distribution_matching_loss,
    distribution_matching_with,
    dm_au_weights,
)
from affect.losses.coupling.soft_co_annotation import (
    soft_co_annotation_loss,
    soft_co_annotation_targets,
    soft_co_annotation_targets_tables,
    soft_co_annotation_targets_with,
)
from affect.losses.coupling.tables import NEUTRAL, PRESENT_THRESHOLD, CouplingTables, relatedness_tables

__all__ = [
    "CouplingTables",
    "DMAUs",
    "DMGrad",
    "DMForm",
    "DMReduction",
    "DM_FORMS",
    "NEUTRAL",
    "PRESENT_THRESHOLD",
    "relatedness_tables",
    "co_annotate",
    "co_annotate_tables",
    "co_annotate_with",
    "au_mixture",
    "distribution_matching_loss",
    "distribution_matching_with",
    "dm_au_weights",
    "soft_co_annotation_targets",
    "soft_co_annotation_targets_tables",
    "soft_co_annotation_targets_with",
    "soft_co_annotation_loss",
]

"""The multi-task objective ``L_MT`` (paper eq. 7) with FaceBehaviorNet's coupling losses (VI-B).

``L_MT = L_Emo + lambda_au L_AU + lambda_va L_VA + lambda_dm L_DM + lambda_soft L_soft``

where the first three terms are eq. 7 (eq. 4-6 for MT-VGG, all lambdas 1) and the last two are
switched on by ``distribution_matching`` (eq. 8-9) and ``soft_co_annotation`` (VI-B.3);
``co_annotation`` (VI-B.1) rewrites the EXPR/AU targets before ``L_Emo`` and ``L_AU``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from affect.data.batches import TASKS, Batch, FrameRows
from affect.labels import AU_SET, EXPR_IGNORE
from affect.losses.coupling import (
    DM_FORMS,
    CouplingTables,
    DMForm,
    DMGrad,
    co_annotate_with,
    distribution_matching_with,
    dm_au_weights,
    relatedness_tables,
    soft_co_annotation_loss,
    soft_co_annotation_targets_with,
)
from affect.losses.task import au_bce_loss, ccc_loss, expr_ce_loss, upcast

__all__ = ["MultiTaskLoss"]


def _target_with_mask(batch: Mapping, key: str, n: int, width: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """``(target [n, width], mask [n, width] bool)``; absent target -> nothing annotated.

    An absent ``<key>_mask`` means "annotated where the target is finite".
    """
    target = batch.get(key)
    if target is None:
        return like.new_zeros(n, width), torch.zeros(n, width, dtype=torch.bool, device=like.device)
    target = target.to(like.device)
    if target.shape != (n, width):
        raise ValueError(
            f"batch[{key!r}] has shape {tuple(target.shape)}, expected {(n, width)} to match the outputs"
        )
    mask = batch.get(f"{key}_mask")
    mask = torch.isfinite(target) if mask is None else mask.to(like.device).bool()
    return target, mask


class MultiTaskLoss(nn.Module):
    """``L_MT`` of eq. 7 plus the coupling losses of Sec. VI-B, over one (concatenated) batch.

    ``forward(outputs, batch)`` (or ``forward(rows)``, a step's :class:`~affect.data.batches.FrameRows`)
    returns a dict with ``"loss"`` (the weighted total) and one
    *unweighted* entry per active term: ``"expr"`` (:func:`expr_ce_loss`), ``"au"``
    (:func:`au_bce_loss`), ``"va"`` (:func:`ccc_loss`) for every head present in ``outputs``,
    plus ``"dm"`` and ``"soft"`` when switched on. A term whose targets are absent from the batch
    (e.g. an EXPR-only batch) or all masked is exactly 0 and connected to the graph, never NaN.
    Sequence outputs ``[B, T, ...]`` are flattened to the valid frames (``batch["frame_mask"]``,
    :meth:`FrameRows.of <affect.data.batches.FrameRows.of>`); rows given as ``FrameRows`` are used as
    they are (the task module flattens once per step, for the loss and the metrics).

    Args:
        lambda_au, lambda_va: eq. 7's lambda_1, lambda_2 (``L_Emo`` has weight 1).
        relatedness: ``"du2014"``, ``"affwild2"`` or a relatedness JSON path (Table V);
            ``None`` is allowed only with every coupling off. Loaded once, into buffers.
        co_annotation: VI-B.1, applied to the targets before ``L_Emo`` / ``L_AU``
            (:func:`~affect.losses.coupling.co_annotate`).
        distribution_matching: VI-B.2, eq. 8-9, over every sample (valid frame) in the batch.
        soft_co_annotation: VI-B.3, soft emotion labels from the batch's *real* AU annotations
            (before co-annotation), on every sample with annotated related AUs.
        lambda_dm, lambda_soft: weights of the two coupling terms (the paper gives none: 1).
        reweight: observational AUs weighted by ``w`` in co-annotation and soft co-annotation.
        au_set: the model's AU set (its AU head's order); 17 AUs by default.
        dm_grad: which side ``L_DM`` trains: ``"both"`` (default), ``"au"`` (the emotions are a
            detached teacher of the AU head) or ``"expr"`` (the AU predictions teach the emotions).
        dm_form: ``"matched"`` (default) or ``"printed"`` (eq. 9 exactly as printed); see below.
        weighted_dm: eq. 8 with footnote 3's weights ``w`` instead of the 0/1 table (default 0/1).
        neutral_score: Neutral's soft co-annotation score (``None`` = excluded); default 0.0.
        soft_temperature: softmax temperature of soft co-annotation (default 1).
        expr_label_smoothing: label smoothing of the hard EXPR labels in eq. 4's cross entropy
            (0 = the paper; :func:`~affect.losses.task.expr_ce_loss`), an option of the FER2013 recipe.
        ccc_eps, dm_eps: numerical guards of the CCC denominator and of ``log q``.

    **Distribution matching form** (``dm_form``). Eq. 9 as printed, ``-sum_i p_i log q_i``
    over the 17 AUs (``"printed"``), fights the AU labels when it trains the AU head: its AU-side
    gradient ``-log q_i >= 0`` only pushes AU probabilities down, and an AU that no emotion relates
    to (AU14 under ``du2014``; 14, 20, 23, 24 under ``affwild2``) has ``q = 0`` whatever the
    emotions, hence ``-log eps = 13.8`` per unit of ``p``: at zero logits ``L_DM`` is 18.1
    (``du2014``) / 35.6 (``affwild2``) against ``L_Emo = log 7 = 1.95``. On free logits with AU12
    and AU14 annotated positive (no emotion label, soft co-annotation + DM, lambdas 1, 300 Adam
    steps at lr 0.05; ``tests/losses/test_dm_form.py``) the printed form ends at p(AU12) = 0.91 and
    p(AU14) = 0.04 against their labels. The default ``"matched"`` form is footnote 4's
    ``KL(p || q)`` read per AU as a Bernoulli pair (``p log p/q + (1-p) log (1-p)/(1-q)``: the
    AU side is pulled *to* q, not down; the EXPR side gets the cross entropy's gradient, as in
    distillation), only over the AUs some emotion relates to (an unrelated AU's ``q`` says
    nothing about the emotions), averaged over them (one AU's term on the scale of ``L_AU``, which
    eq. 7 averages over the annotated AUs). At zero logits it is 0.17 / 0.20; in the same
    free-logit run p(AU12) = 0.98, p(AU14) = 0.99, the soft label's Happiness is the most likely
    emotion, and the unlabelled AU25 settles on its mixture ``q`` (0.57). Both sides train by
    default (``dm_grad``).

    >>> import torch
    >>> loss = MultiTaskLoss(relatedness=None)
    >>> outputs = {"va": torch.zeros(2, 2), "expr": torch.zeros(2, 7, requires_grad=True), "au": torch.zeros(2, 17)}
    >>> out = loss(outputs, {"expr": torch.tensor([0, -1])})   # an EXPR-only batch
    >>> sorted(out), round(out["loss"].item(), 4), out["au"].item()
    (['au', 'expr', 'loss', 'va'], 1.9459, 0.0)
    """

    def __init__(
        self,
        lambda_au: float = 1.0,
        lambda_va: float = 1.0,
        relatedness: str | None = "du2014",
        co_annotation: bool = False,
        distribution_matching: bool = False,
        soft_co_annotation: bool = False,
        lambda_dm: float = 1.0,
        lambda_soft: float = 1.0,
        reweight: bool = True,
        au_set: Sequence[int] = AU_SET,
        dm_grad: DMGrad = "both",
        dm_form: DMForm = "matched",
        weighted_dm: bool = False,
        neutral_score: float | None = 0.0,
        soft_temperature: float = 1.0,
        expr_label_smoothing: float = 0.0,
        ccc_eps: float = 1e-8,
        dm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        for name, value in (
            ("lambda_au", lambda_au),
            ("lambda_va", lambda_va),
            ("lambda_dm", lambda_dm),
            ("lambda_soft", lambda_soft),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if dm_grad not in ("both", "au", "expr"):
            raise ValueError(f"dm_grad must be 'both', 'au' or 'expr', got {dm_grad!r}")
        if dm_form not in DM_FORMS:
            raise ValueError(f"dm_form must be one of {sorted(DM_FORMS)}, got {dm_form!r}")
        if soft_temperature <= 0:
            raise ValueError(f"soft_temperature must be > 0, got {soft_temperature}")
        if not 0.0 <= expr_label_smoothing < 1.0:
            raise ValueError(f"expr_label_smoothing must be in [0, 1), got {expr_label_smoothing}")
        self.lambda_au, self.lambda_va = float(lambda_au), float(lambda_va)
        self.lambda_dm, self.lambda_soft = float(lambda_dm), float(lambda_soft)
        self.co_annotation = co_annotation
        self.distribution_matching = distribution_matching
        self.soft_co_annotation = soft_co_annotation
        self.reweight = reweight
        self.au_set = tuple(int(a) for a in au_set)
        self.dm_grad: DMGrad = dm_grad
        self.dm_form: DMForm = dm_form
        self.weighted_dm = weighted_dm
        self.neutral_score = neutral_score
        self.soft_temperature = float(soft_temperature)
        self.expr_label_smoothing = float(expr_label_smoothing)
        self.ccc_eps, self.dm_eps = ccc_eps, dm_eps
        self.relatedness_name = relatedness
        if self.coupled:
            if relatedness is None:
                raise ValueError(
                    "relatedness=None but a coupling loss is on (co_annotation / distribution_matching / "
                    "soft_co_annotation); give 'du2014', 'affwild2' or a relatedness JSON path"
                )
            related, weights = relatedness_tables(relatedness, self.au_set)
            # Non-persistent: derived from the config, not learned; .to(device) moves them. What the
            # coupling losses derive from the tables is derived here once, not on every step.
            self.register_buffer("related", related, persistent=False)
            self.register_buffer("weights", weights, persistent=False)
            self.tables = CouplingTables(related, weights, reweight=reweight)
            form = DM_FORMS[dm_form]
            dm_weights = dm_au_weights(weights if weighted_dm else related, form["aus"], form["reduction"])
            self.register_buffer("dm_weights", dm_weights, persistent=False)

    @property
    def coupled(self) -> bool:
        """Whether any coupling loss (which needs the relatedness tables) is on."""
        return self.co_annotation or self.distribution_matching or self.soft_co_annotation

    def extra_repr(self) -> str:
        on = [n for n in ("co_annotation", "distribution_matching", "soft_co_annotation") if getattr(self, n)]
        return (
            f"lambda_au={self.lambda_au}, lambda_va={self.lambda_va}, relatedness={self.relatedness_name!r}, "
            f"coupling={on}, num_aus={len(self.au_set)}"
        )

    def forward(self, outputs: Mapping[str, Tensor] | FrameRows, batch: Batch | None = None) -> dict[str, Tensor]:
        """Loss terms of one batch (``outputs`` and ``batch``) or of its rows (``FrameRows``, no
        ``batch``); see the class docstring."""
        if isinstance(outputs, FrameRows):
            if batch is not None:
                raise TypeError("MultiTaskLoss: pass either (outputs, batch) or the FrameRows alone, not both")
            rows = outputs
        elif batch is None:
            raise TypeError("MultiTaskLoss: batch is missing; call loss(outputs, batch) or loss(FrameRows)")
        else:
            rows = FrameRows.of(outputs, batch)
        out, batch = rows.outputs, rows.batch
        if not out:
            given = rows.outputs if isinstance(outputs, FrameRows) else outputs
            raise ValueError(f"MultiTaskLoss: outputs hold none of {TASKS}; got {sorted(given)}")
        if self.coupled and ("expr" not in out or "au" not in out):
            raise ValueError("MultiTaskLoss: the coupling losses need both 'expr' and 'au' outputs")
        ref = next(iter(out.values()))
        n = ref.shape[0]
        terms: dict[str, Tensor] = {}

        if "expr" in out:
            expr_t = batch.get("expr")
            expr_t = (
                torch.full((n,), EXPR_IGNORE, dtype=torch.long, device=ref.device)
                if expr_t is None
                else expr_t.to(ref.device).long()
            )
            if expr_t.shape != (n,):
                raise ValueError(f"batch['expr'] has shape {tuple(expr_t.shape)}, expected {(n,)}")
        if "au" in out:
            if out["au"].shape[1] != len(self.au_set):
                raise ValueError(
                    f"AU head has {out['au'].shape[1]} outputs but au_set has {len(self.au_set)} AUs {self.au_set}"
                )
            au_t, au_m = _target_with_mask(batch, "au", n, out["au"].shape[1], out["au"])
            au_w = au_m.to(upcast(out["au"]).dtype)

        if self.soft_co_annotation:  # from the real AU labels, before co-annotation
            soft, valid = soft_co_annotation_targets_with(
                au_t, au_m, self.tables, neutral_score=self.neutral_score, temperature=self.soft_temperature
            )
        if self.co_annotation:
            expr_t, au_t, au_w = co_annotate_with(expr_t, au_t, au_w, self.tables)

        total = None
        if "expr" in out:
            terms["expr"] = expr_ce_loss(  # the datasets map labels into the 7 classes: no per-step check
                out["expr"], expr_t, label_smoothing=self.expr_label_smoothing, validate_args=False
            )
            total = terms["expr"]
        if "au" in out:
            terms["au"] = au_bce_loss(out["au"], au_t, au_w, validate_args=False)  # masks / table weights
            total = self._add(total, self.lambda_au, terms["au"])
        if "va" in out:
            va_t, va_m = _target_with_mask(batch, "va", n, out["va"].shape[1], out["va"])
            terms["va"] = ccc_loss(out["va"], va_t, va_m, eps=self.ccc_eps)
            total = self._add(total, self.lambda_va, terms["va"])
        if self.distribution_matching:
            form = DM_FORMS[self.dm_form]
            terms["dm"] = distribution_matching_with(
                out["expr"],
                out["au"],
                self.weights if self.weighted_dm else self.related,
                self.dm_weights,
                dm_grad=self.dm_grad,
                binary=form["binary"],
                kl=form["kl"],
                eps=self.dm_eps,
            )
            total = self._add(total, self.lambda_dm, terms["dm"])
        if self.soft_co_annotation:
            terms["soft"] = soft_co_annotation_loss(out["expr"], soft, valid)
            total = self._add(total, self.lambda_soft, terms["soft"])
        return {"loss": total, **terms}

    @staticmethod
    def _add(total: Tensor | None, weight: float, term: Tensor) -> Tensor:
        term = term if weight == 1.0 else weight * term  # the same value without one op per term
        return term if total is None else total + term

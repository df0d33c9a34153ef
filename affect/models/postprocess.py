"""Post-processing of per-frame valence-arousal predictions (paper Sec. V-B).

The pieces, each a plain function on tensors:

- ``sequence_medians``: the median of a sequence's per-frame predictions over its valid frames
  ("their median constitute the final estimates", CNN-3RNN / CNN-1RNN / model-level fusion).
- ``group_medians`` / ``group_means``: the same over flat predictions grouped by an id (a video,
  a sequence, an utterance).
- ``decision_level_fusion``: eq. 3, the weighted average of several networks' estimates, each
  weighted by its validation CCC, per dimension.
- ``utterance_estimates``: the OMG-Emotion adaptation: "the median values of the predicted
  valence-arousal values were first computed at sequence level. Then, the median values were
  averaged at utterance level".
- ``median_filter`` and ``moving_average``: the two post-processing steps ("median filtering of
  the per frame predictions within each sequence" and "smoothing of the per utterance
  predictions").
- ``PostProcessChain``: "any of these post-processing steps was kept when an improvement was
  observed on the CCC over the validation set, and applied then, with the same configuration to
  the test partition". ``fit`` chooses on validation, ``__call__`` applies unchanged.

Medians use the usual definition (the mean of the two middle values for an even count, as
``numpy.median``), not ``torch.median``'s lower median.

>>> import torch
>>> preds = torch.tensor([[[0.1, 0.5], [0.3, 0.7], [0.2, 9.0]]])   # [B=1, T=3, 2]
>>> sequence_medians(preds, torch.tensor([[True, True, False]]))  # last frame is padding
tensor([[0.2000, 0.6000]])
>>> est = torch.tensor([[0.2, 0.4], [0.6, 0.0]])                  # two networks' estimates
>>> decision_level_fusion([est[:1], est[1:]], val_ccc=[[0.3, 0.2], [0.1, 0.2]])
tensor([[0.3000, 0.2000]])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "PostProcessChain",
    "PostStep",
    "decision_level_fusion",
    "group_means",
    "group_medians",
    "masked_median",
    "median_filter",
    "moving_average",
    "omg_chain",
    "sequence_medians",
    "sequence_targets",
    "utterance_estimates",
]


def masked_median(values: Tensor, mask: Tensor, dim: int = 1) -> Tensor:
    """Median of ``values`` along ``dim`` over the entries where ``mask`` is True.

    ``mask`` broadcasts against ``values`` (e.g. ``[B, T, 1]`` for ``[B, T, 2]``). Even counts
    give the mean of the two middle values. A slice without any valid entry is an error.
    """
    mask = torch.broadcast_to(mask.bool(), values.shape)
    count = mask.sum(dim=dim, keepdim=True)
    if bool((count == 0).any()):
        empty = (count == 0).nonzero()[:, 0].unique().tolist()
        raise ValueError(f"masked_median: no valid entry along dim {dim} for index(es) {empty} of dim 0")
    filled = values.masked_fill(~mask, float("inf"))
    ordered = filled.sort(dim=dim).values
    lo = torch.gather(ordered, dim, (count - 1) // 2)
    hi = torch.gather(ordered, dim, count // 2)
    return ((lo + hi) / 2).squeeze(dim)


def sequence_medians(preds: Tensor, frame_mask: Tensor | None = None) -> Tensor:
    """Per-sequence median of per-frame predictions ``[B, T, D]`` over valid frames -> ``[B, D]``.

    The final estimate of CNN-1RNN, CNN-3RNN and the model-level fusion nets (Sec. V-B).
    ``frame_mask`` is bool ``[B, T]`` (False = padding); None means every frame is valid.
    """
    if preds.dim() != 3:
        raise ValueError(f"sequence_medians expects predictions [B, T, D], got shape {tuple(preds.shape)}")
    if frame_mask is None:
        frame_mask = torch.ones(preds.shape[:2], dtype=torch.bool, device=preds.device)
    if frame_mask.shape != preds.shape[:2]:
        raise ValueError(
            f"frame_mask shape {tuple(frame_mask.shape)} does not match predictions [B, T] = {tuple(preds.shape[:2])}"
        )
    return masked_median(preds, frame_mask.unsqueeze(-1), dim=1)


def sequence_targets(
    va: Tensor, va_mask: Tensor | None = None, frame_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-sequence reference values for evaluating per-sequence medians: ``(target [B, 2], mask [B, 2])``.

    The median of each sequence's annotated valid frames, per dimension (for utterance-level labels,
    as OMG-Emotion's, every frame carries the utterance's value and the median is that value);
    ``mask`` is False where a sequence has no annotated valid frame for that dimension.

    >>> va = torch.tensor([[[0.5, 0.1], [0.5, 0.3], [9.0, 9.0]]])
    >>> sequence_targets(va, torch.tensor([[[True, False], [True, True], [True, True]]]),
    ...                  torch.tensor([[True, True, False]]))
    (tensor([[0.5000, 0.3000]]), tensor([[True, True]]))
    """
    if va.dim() != 3:
        raise ValueError(f"sequence_targets expects va [B, T, 2], got shape {tuple(va.shape)}")
    valid = torch.ones_like(va, dtype=torch.bool) if va_mask is None else va_mask.bool()
    if frame_mask is not None:
        valid = valid & frame_mask.bool().unsqueeze(-1)
    has = valid.any(1)  # [B, 2]
    safe = valid | ~has.unsqueeze(1)  # sequences without a label: any value, masked out below
    return masked_median(va.float(), safe, dim=1), has


def _group_index(ids: Sequence[Hashable]) -> tuple[list[Hashable], Tensor]:
    order: dict[Hashable, int] = {}
    index = [order.setdefault(i, len(order)) for i in ids]
    return list(order), torch.tensor(index, dtype=torch.long)


def group_medians(values: Tensor, ids: Sequence[Hashable]) -> tuple[list[Hashable], Tensor]:
    """Median of ``values [N, D]`` per group id -> ``(unique ids in first-seen order, [G, D])``."""
    if len(ids) != values.shape[0]:
        raise ValueError(f"group_medians: {len(ids)} ids for {values.shape[0]} rows")
    uniq, index = _group_index(ids)
    index = index.to(values.device)
    out = torch.stack([masked_median(values, (index == g).unsqueeze(-1), dim=0) for g in range(len(uniq))])
    return uniq, out


def group_means(values: Tensor, ids: Sequence[Hashable]) -> tuple[list[Hashable], Tensor]:
    """Mean of ``values [N, D]`` per group id -> ``(unique ids in first-seen order, [G, D])``."""
    if len(ids) != values.shape[0]:
        raise ValueError(f"group_means: {len(ids)} ids for {values.shape[0]} rows")
    uniq, index = _group_index(ids)
    index = index.to(values.device)
    sums = torch.zeros(len(uniq), values.shape[1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, index, values)
    counts = torch.bincount(index, minlength=len(uniq)).to(values.dtype).unsqueeze(1)
    return uniq, sums / counts


def utterance_estimates(
    preds: Tensor, frame_mask: Tensor | None, utterance_ids: Sequence[Hashable]
) -> tuple[list[Hashable], Tensor]:
    """OMG-Emotion utterance estimates (Sec. V-B): median per sequence, then mean per utterance.

    ``preds`` ``[S, T, 2]`` are the per-frame predictions of the ``S`` sequences an utterance was
    split into; ``utterance_ids[s]`` names the utterance of sequence ``s``.
    Returns ``(utterance ids in first-seen order, [U, 2])``.
    """
    if len(utterance_ids) != preds.shape[0]:
        raise ValueError(
            f"utterance_estimates: {len(utterance_ids)} utterance ids for {preds.shape[0]} sequences"
        )
    return group_means(sequence_medians(preds, frame_mask), utterance_ids)


def decision_level_fusion(estimates: Sequence[Tensor], val_ccc: Sequence[Sequence[float]] | Tensor) -> Tensor:
    """Decision-level fusion, eq. 3: ``O_i = sum_n t_i^n o_i^n / sum_n t_i^n`` for i in {v, a}.

    ``estimates``: one tensor ``[..., 2]`` per network (the networks' final estimates, in the same
    order of samples); ``val_ccc``: ``[N, 2]``, network n's validation CCC for (valence, arousal),
    the weights ``t_i^n``. Weights must be >= 0 with a positive sum per dimension (a network with
    negative validation CCC would otherwise be *subtracted*; drop it instead).
    """
    if len(estimates) == 0:
        raise ValueError("decision_level_fusion needs at least one network's estimates")
    stacked = torch.stack(list(estimates))  # [N, ..., 2]
    weights = torch.as_tensor(val_ccc, dtype=stacked.dtype, device=stacked.device)
    if weights.shape != (len(estimates), stacked.shape[-1]):
        raise ValueError(
            f"val_ccc must have shape [{len(estimates)}, {stacked.shape[-1]}] (networks x dimensions), "
            f"got {tuple(weights.shape)}"
        )
    if bool((weights < 0).any()) or bool((weights.sum(0) <= 0).any()):
        raise ValueError(
            f"eq. 3 weights (validation CCCs) must be >= 0 with a positive sum per dimension, got {weights.tolist()}"
        )
    w = weights.view(len(estimates), *([1] * (stacked.dim() - 2)), stacked.shape[-1])
    return (w * stacked).sum(0) / weights.sum(0)


def median_filter(preds: Tensor, kernel_size: int, frame_mask: Tensor | None = None) -> Tensor:
    """Median filter along time of per-frame predictions ``[B, T, D]``, within each sequence.

    Odd ``kernel_size``; edges repeat the first / last valid frame (``scipy.ndimage.median_filter``
    with ``mode="nearest"``). With a ``frame_mask``, padding must be trailing: each sequence is
    filtered over its valid prefix only and padded frames are returned unchanged.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"median_filter kernel_size must be a positive odd integer, got {kernel_size}")
    if preds.dim() != 3:
        raise ValueError(f"median_filter expects predictions [B, T, D], got shape {tuple(preds.shape)}")
    if kernel_size == 1:
        return preds.clone()
    if frame_mask is None:
        return _median_filter_full(preds, kernel_size)
    out = preds.clone()
    lengths = frame_mask.sum(1)
    for b, n in enumerate(lengths.tolist()):
        if not bool(frame_mask[b, :n].all()):
            raise ValueError("median_filter expects trailing padding (frame_mask = valid prefix, then False)")
        if n:
            out[b, :n] = _median_filter_full(preds[b : b + 1, :n], kernel_size)[0]
    return out


def _median_filter_full(preds: Tensor, kernel_size: int) -> Tensor:
    half = kernel_size // 2
    x = preds.transpose(1, 2)  # [B, D, T]
    x = F.pad(x, (half, half), mode="replicate")
    windows = x.unfold(-1, kernel_size, 1)  # [B, D, T, k]; odd k: the middle is the median
    return windows.sort(-1).values[..., half].transpose(1, 2)


def moving_average(values: Tensor, window: int, group_ids: Sequence[Hashable] | None = None) -> Tensor:
    """Centred moving average of ordered rows ``[N, D]``, within each group (e.g. one video's utterances).

    Odd ``window``; at the edges the average is over the rows that exist (the window shrinks),
    as ``pandas.Series.rolling(window, center=True, min_periods=1).mean()``. Rows of one group
    must be given in temporal order; groups may interleave.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"moving_average window must be a positive odd integer, got {window}")
    if group_ids is None:
        group_ids = [0] * values.shape[0]
    if len(group_ids) != values.shape[0]:
        raise ValueError(f"moving_average: {len(group_ids)} group ids for {values.shape[0]} rows")
    uniq, index = _group_index(group_ids)
    out = values.clone()
    half = window // 2
    for g in range(len(uniq)):
        rows = (index == g).nonzero()[:, 0].to(values.device)
        v = values[rows]  # [n, D]
        csum = F.pad(v.cumsum(0), (0, 0, 1, 0))
        n = v.shape[0]
        pos = torch.arange(n, device=values.device)
        lo = (pos - half).clamp(min=0)
        hi = (pos + half + 1).clamp(max=n)
        out[rows] = (csum[hi] - csum[lo]) / (hi - lo).unsqueeze(1).to(values.dtype)
    return out


@dataclass
class PostStep:
    """One step of a post-processing chain.

    ``candidates`` maps a configuration name (e.g. ``"k=5"``) to a function state -> state.
    An ``optional`` step is kept (with its best configuration) only if it raises the validation
    score; a fixed step (``optional=False``, exactly one candidate) always runs, e.g. the
    aggregation of frame predictions to utterance estimates.
    """

    name: str
    candidates: Mapping[str, Callable[[Any], Any]]
    optional: bool = True

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError(f"post-processing step {self.name!r} has no candidate configuration")
        if not self.optional and len(self.candidates) != 1:
            raise ValueError(
                f"fixed step {self.name!r} must have exactly one candidate, got {len(self.candidates)}"
            )


@dataclass
class PostProcessChain:
    """Greedy validation-driven post-processing chain (paper Sec. V-B, last paragraph).

    ``fit(val_state, score)`` walks the optional steps in order; for each it runs the whole
    chain (fixed steps + steps kept so far + this step's candidate, later optional steps off),
    and keeps the best candidate if its final ``score`` is strictly higher than without the step.
    ``__call__(state)`` then applies the fixed and kept steps, unchanged, to e.g. the test set.
    ``choices`` records ``{step name: configuration name or None}`` and ``scores`` every
    validation score tried (``"baseline"`` = fixed steps only).
    """

    steps: Sequence[PostStep]
    choices: dict[str, str | None] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    fitted: bool = False

    def _run(self, state: Any, chosen: Mapping[str, str | None]) -> Any:
        for step in self.steps:
            if not step.optional:
                state = next(iter(step.candidates.values()))(state)
            elif chosen.get(step.name) is not None:
                state = step.candidates[chosen[step.name]](state)
        return state

    def fit(self, val_state: Any, score: Callable[[Any], float]) -> PostProcessChain:
        chosen: dict[str, str | None] = {s.name: None for s in self.steps if s.optional}
        best = float(score(self._run(val_state, chosen)))
        self.scores = {"baseline": best}
        for step in self.steps:
            if not step.optional:
                continue
            for cfg in step.candidates:
                trial = float(score(self._run(val_state, {**chosen, step.name: cfg})))
                self.scores[f"{step.name}:{cfg}"] = trial
                if trial > best:
                    best, chosen[step.name] = trial, cfg
        self.choices = chosen
        self.fitted = True
        return self

    def __call__(self, state: Any) -> Any:
        if not self.fitted:
            raise RuntimeError("PostProcessChain.fit(val_state, score) must run before applying the chain")
        return self._run(state, self.choices)


def _aggregate_utterances(state: Mapping[str, Any]) -> dict[str, Any]:
    ids, va = utterance_estimates(state["frames"], state.get("frame_mask"), state["utterance"])
    video_of = dict(zip(state["utterance"], state.get("video", state["utterance"]), strict=True))
    return {"utterance": ids, "video": [video_of[u] for u in ids], "va": va}


def omg_chain(
    median_kernels: Sequence[int] = (3, 5, 9, 15), smoothing_windows: Sequence[int] = (3, 5)
) -> PostProcessChain:
    """The OMG-Emotion chain of Sec. V-B: [median filter per sequence] -> utterance estimates -> [smoothing].

    The state going in is a dict ``{"frames": [S, T, 2], "frame_mask": [S, T] | None,
    "utterance": S ids, "video": S ids}`` (the sequences an utterance was split into, with the
    utterance and video of each); the state coming out is ``{"utterance": U ids, "video": U ids,
    "va": [U, 2]}``. Smoothing is a centred moving average over consecutive utterances of one video
    (our reading of "smoothing of the per utterance predictions"; utterances must be listed in
    temporal order). Both bracketed steps are optional and kept only if the validation score rises.

    >>> chain = omg_chain(median_kernels=(3,), smoothing_windows=(3,))
    >>> [s.name for s in chain.steps]
    ['median_filter', 'utterance_estimates', 'smoothing']
    """

    def _mf(k: int) -> Callable[[Any], Any]:
        return lambda s: {**s, "frames": median_filter(s["frames"], k, s.get("frame_mask"))}

    def _ma(w: int) -> Callable[[Any], Any]:
        return lambda s: {**s, "va": moving_average(s["va"], w, s["video"])}

    return PostProcessChain(
        steps=[
            PostStep("median_filter", {f"k={k}": _mf(k) for k in median_kernels}),
            PostStep("utterance_estimates", {"median->mean": _aggregate_utterances}, optional=False),
            PostStep("smoothing", {f"w={w}": _ma(w) for w in smoothing_windows}),
        ]
    )

"""Weighted means of several named values updated together: the training loss terms of a step.

One ``update`` per step for every term instead of one ``LightningModule.log`` per term (each ``log``
call costs Lightning ~0.1-2.5 ms of Python on the host), with additive states
(``dist_reduce_fx="sum"``) so that the epoch means are exact under DDP.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


class WeightedMeans(Metric):
    """``{name: sum_steps w * value / sum_steps w}`` over everything seen, for the ``names`` given.

    ``update(values, weight)``: ``values`` ``[len(names)]`` (detached here), ``weight`` a number or a
    tensor broadcasting to it (e.g. the batch size). No host sync: it only adds on the device.

    >>> means = WeightedMeans(["expr", "au"])
    >>> means.update(torch.tensor([1.0, 4.0]), 3)
    >>> means.update(torch.tensor([2.0, 0.0]), 1)
    >>> {k: round(v.item(), 4) for k, v in means.compute().items()}
    {'expr': 1.25, 'au': 3.0}
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    sums: Tensor
    weights: Tensor

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = tuple(names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"WeightedMeans needs distinct names, found {list(self.names)}")
        self.add_state("sums", default=torch.zeros(len(self.names)), dist_reduce_fx="sum")
        self.add_state("weights", default=torch.zeros(len(self.names)), dist_reduce_fx="sum")

    def update(self, values: Tensor, weight: Tensor | float = 1.0) -> None:
        """Add ``weight * values`` (``values`` in the order of ``names``)."""
        if values.shape != (len(self.names),):
            raise ValueError(f"WeightedMeans: expected {len(self.names)} values {self.names}, found {tuple(values.shape)}")
        self.sums += values.detach().to(self.sums.dtype) * weight
        self.weights += weight

    def compute(self) -> dict[str, Tensor]:
        """The weighted mean of each name (NaN for a name never given any weight)."""
        return dict(zip(self.names, self.sums / self.weights, strict=True))

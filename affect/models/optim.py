"""The optimiser of the paper's models: Adam (Sec. V-VI), optionally with the learning rate decayed by
``gamma`` per epoch from epoch ``decay_after`` on (a step schedule, per epoch), or -- not in the paper --
annealed to 0 along a half cosine over the run's optimiser steps (Loshchilov & Hutter 2017, no restarts).

>>> import torch
>>> net = torch.nn.Linear(2, 1)
>>> cfg = adam_with_decay(net.parameters(), lr=1e-3, decay_after=2, decay_gamma=0.5)
>>> [round(cfg["lr_scheduler"]["scheduler"].lr_lambdas[0](e), 3) for e in range(5)]
[1.0, 1.0, 0.5, 0.25, 0.125]
>>> cfg = adam_with_decay(net.parameters(), lr=1e-3, cosine_steps=4)
>>> factors = []
>>> for _ in range(5):
...     factors.append(round(cfg["lr_scheduler"]["scheduler"].get_last_lr()[0] / 1e-3, 3))
...     cfg["optimizer"].step(); cfg["lr_scheduler"]["scheduler"].step()
>>> factors
[1.0, 0.854, 0.5, 0.146, 0.0]
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR

__all__ = ["adam_with_decay"]


def _decay_factor(epoch: int, after: int, gamma: float) -> float:
    return gamma ** max(0, epoch - after + 1)


def adam_with_decay(
    parameters: Iterable[torch.nn.Parameter],
    lr: float,
    decay_after: int | None = None,
    decay_gamma: float = 0.95,
    cosine_steps: int | None = None,
):
    """Adam over the trainable ``parameters``; with ``decay_after``, Lightning's optimiser config with a
    per-epoch ``LambdaLR`` (factor ``decay_gamma ** max(0, epoch - decay_after + 1)``); with
    ``cosine_steps`` instead, torch's per-step ``CosineAnnealingLR`` (factor
    ``(1 + cos(pi * step / cosine_steps)) / 2``, down to 0 at ``cosine_steps``: the run's last step)."""
    params = [p for p in parameters if p.requires_grad]
    # fused Adam (one kernel per step, step counts on the device: no .item() per parameter) where torch
    # has it; on the CPU it is also 3-4x faster than the per-parameter loop
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    optimizer = torch.optim.Adam(params, lr=lr, fused=fused or None)
    if cosine_steps is not None:
        if decay_after is not None or cosine_steps < 1:
            raise ValueError(f"a cosine schedule takes >= 1 steps and no step decay, got {cosine_steps}, {decay_after}")
        scheduler = CosineAnnealingLR(optimizer, T_max=cosine_steps, eta_min=0.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
    if decay_after is None:
        return optimizer
    factor = functools.partial(_decay_factor, after=decay_after, gamma=decay_gamma)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "epoch"}}

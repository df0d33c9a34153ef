"""What a training step asks of the device beyond its arithmetic: aten op counts and host syncs.

On a GPU the host queues kernels ahead of the device; an op that needs a value computed on the
device (a Python ``bool`` / ``int`` / ``.item()`` of a tensor, a shape that depends on the data)
makes the host wait until the queue has drained, and every op is at least one kernel launch. Both
can be counted on a CPU, with a ``TorchDispatchMode`` that sees every aten op a step runs (the
forward, the backward, the metric updates, the optimiser):

- :data:`HOST_SYNC_OPS`: ops that wait for the device on CUDA: ``aten::_local_scalar_dense``
  (``.item()``, ``bool(t)``, ``int(t)``, ``float(t)``; ``aten::is_nonzero`` and ``aten::item``
  decompose into it), ``aten::nonzero`` (``torch.where(cond)``, ``argwhere``), ``masked_select``,
  ``unique`` / ``unique_consecutive``, ``bincount`` (its output size is the data's maximum),
  ``repeat_interleave`` without ``output_size``, ``equal``;
- indexing with a bool mask (``x[mask]``, ``x[mask] = v``: ``aten::index`` / ``index_put`` with a
  bool index, which runs ``nonzero`` inside);
- ``aten::lift_fresh``: a tensor built from Python data (``torch.tensor([...])``) inside the step;
  on a GPU it is copied to the device, and a blocking host-to-device copy waits for the queue too.

>>> import torch
>>> x = torch.tensor([1.0, -2.0, 3.0])
>>> with HostSyncCounter() as syncs:
...     y = x[x > 0].sum()             # bool-mask indexing: a sync
...     z = torch.where(x > 0, x, 0.0).sum()   # the same sum without one
...     flag = bool(z > 0)             # a Python branch on a tensor: a sync
>>> sorted(syncs.counts().items())
[('aten._local_scalar_dense.default', 1), ('aten.index.Tensor[bool]', 1)]
>>> float(y) == float(z)
True
"""

from __future__ import annotations

import re
import traceback
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HOST_SYNC_OPS", "HostSyncCounter", "OpCounter", "is_host_sync"]

_aten = torch.ops.aten
#: aten ops that make the host wait for a CUDA device, whatever their arguments (module docstring).
HOST_SYNC_OPS = frozenset(
    {
        _aten._local_scalar_dense.default,
        _aten.nonzero.default,
        _aten.masked_select.default,
        _aten._unique.default,
        _aten._unique2.default,
        _aten.unique_dim.default,
        _aten.unique_consecutive.default,
        _aten.bincount.default,
        _aten.repeat_interleave.Tensor,
        _aten.equal.default,
        _aten.lift_fresh.default,
    }
)
_INDEX_OPS = frozenset(
    {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default, _aten._index_put_impl_.default}
)
_PACKAGE = str(Path(__file__).resolve().parent)
_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<name>\S+)')


def is_host_sync(func, args: tuple) -> str | None:
    """The name under which ``func(*args)`` counts as a host sync on CUDA (see the module docstring), or None."""
    if func in HOST_SYNC_OPS:
        return str(func)
    if func in _INDEX_OPS:
        indices = args[1] if len(args) > 1 else ()
        if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ()):
            return f"{func}[bool]"
    return None


def _short(path: str, line: int | str, name: str) -> str:
    short = path[len(_PACKAGE) - len("affect") :] if path.startswith(_PACKAGE) else Path(path).name
    return f"{short}:{line} {name}"


def _caller() -> str:
    """``file:line function`` of the innermost frame outside torch that asked for the op.

    In a backward pass that is the forward line which built the autograd node now running, when
    anomaly mode keeps forward tracebacks (``torch.autograd.set_detect_anomaly(True, check_nan=False)``),
    as ``"backward of <caller>"``; without it, ``"backward of <NodeName>"``.
    """
    node = torch._C._current_autograd_node()
    if node is not None:
        for entry in reversed(node.metadata.get("traceback_") or []):
            match = _FRAME.search(entry)
            if match and "/torch/" not in match["path"]:
                return "backward of " + _short(match["path"], match["line"], match["name"])
        return f"backward of {node.name()}"
    for frame in reversed(traceback.extract_stack()[:-3]):
        if "/torch/" in frame.filename or frame.filename == __file__:
            continue
        return _short(frame.filename, frame.lineno, frame.name)
    return "?"


class OpCounter(TorchDispatchMode):
    """Counts the aten ops run while it is active, by op name: in :attr:`ops` those that compute (≈ kernel
    launches on a GPU), in :attr:`views` the views and aliases (``view``, ``t``, ``expand``, ``detach``: no
    kernel).

    Use it as a context manager, or :meth:`start` / :meth:`stop` it around parts of a longer run
    (e.g. only the training steps after the first, from a Lightning callback): ops run while it is
    entered but stopped are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.views: Counter[str] = Counter()
        self.active = True

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    @property
    def total(self) -> int:
        """Ops that compute (views and aliases left out)."""
        return sum(self.ops.values())

    def record(self, func, args: tuple) -> None:
        (self.views if func.is_view else self.ops)[str(func)] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.active:
            self.record(func, args)
        return func(*args, **(kwargs or {}))


class HostSyncCounter(OpCounter):
    """An :class:`OpCounter` that also records every host sync (:func:`is_host_sync`) with the line
    of code that asked for it: :meth:`counts` by op, :meth:`where` by op and caller."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs: Counter[tuple[str, str]] = Counter()

    def record(self, func, args: tuple) -> None:
        super().record(func, args)
        name = is_host_sync(func, args)
        if name is not None:
            self.syncs[(name, _caller())] += 1

    def counts(self) -> Counter[str]:
        """Host syncs by op name."""
        out: Counter[str] = Counter()
        for (name, _), n in self.syncs.items():
            out[name] += n
        return out

    def where(self) -> list[str]:
        """One line per (op, caller), most frequent first: ``"3x aten.nonzero.default at affect/...:12 f"``."""
        return [f"{n}x {name} at {caller}" for (name, caller), n in self.syncs.most_common()]

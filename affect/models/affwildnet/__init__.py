"""AffWildNet (paper Sec. V-A, Table II): :class:`AffWildNet` (``torch_model``) and
:class:`AffWildNetModule` (``lightning_model``, loaded on first access so that the plain model
imports without Lightning)."""

from affect.models.affwildnet.torch_model import AffWildNet, FrameEncoder, SequenceRNN

__all__ = [
    "AffWildNet",
    "AffWildNetModule",
    "FrameEncoder",
    "SequenceRNN",
]


def __getattr__(name: str):
    if name == "AffWildNetModule":
        from affect.models.affwildnet import lightning_model

        return getattr(lightning_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

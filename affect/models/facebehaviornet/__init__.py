"""FaceBehaviorNet (paper Sec. VI-B, Table VI): :class:`FaceBehaviorNet` (``torch_model``) and
:class:`FaceBehaviorNetModule` (``lightning_model``, loaded on first access so that the plain
model imports without Lightning)."""

from affect.models.facebehaviornet.torch_model import FaceBehaviorNet

__all__ = ["FaceBehaviorNet", "FaceBehaviorNetModule"]


def __getattr__(name: str):
    if name == "FaceBehaviorNetModule":
        from affect.models.facebehaviornet.lightning_model import FaceBehaviorNetModule

        return FaceBehaviorNetModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

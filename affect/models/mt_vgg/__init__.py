"""MT-VGG (paper Sec. VI-A.1, Table IV): :class:`MTVGG` (``torch_model``) and :class:`MTVGGModule`
(``lightning_model``, loaded on first access so that the plain model imports without Lightning)."""

from affect.models.mt_vgg.torch_model import ABAW2020_AU_SET, MTVGG, MultiTaskHead

__all__ = ["ABAW2020_AU_SET", "MTVGG", "MTVGGModule", "MultiTaskHead"]


def __getattr__(name: str):
    if name == "MTVGGModule":
        from affect.models.mt_vgg.lightning_model import MTVGGModule

        return MTVGGModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

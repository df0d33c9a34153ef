"""MT-VGG-GRU and A/V-MT-VGG-GRU (paper Sec. VI-A.2-3, Table IV): :class:`MTVGGGRU`,
:class:`AVMTVGGGRU` (``torch_model``) and their LightningModules (``lightning_model``, loaded on
first access)."""

from affect.models.mt_vgg_gru.torch_model import AVMTVGGGRU, MTVGGGRU

__all__ = ["AVMTVGGGRU", "AVMTVGGGRUModule", "MTVGGGRU", "MTVGGGRUModule"]


def __getattr__(name: str):
    if name in ("MTVGGGRUModule", "AVMTVGGGRUModule"):
        from affect.models.mt_vgg_gru import lightning_model

        return getattr(lightning_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

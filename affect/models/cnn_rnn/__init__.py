"""CNN-1RNN, CNN-3RNN and model-level fusion (paper Sec. V-B, Table III): :class:`CNNRNN`,
:class:`ModelLevelFusion` (``torch_model``) and their LightningModules (``lightning_model``, loaded
on first access)."""

from affect.models.cnn_rnn.torch_model import CNNRNN, ModelLevelFusion

__all__ = ["CNNRNN", "CNNRNNModule", "ModelLevelFusion", "ModelLevelFusionModule"]


def __getattr__(name: str):
    if name in ("CNNRNNModule", "ModelLevelFusionModule"):
        from affect.models.cnn_rnn import lightning_model

        return getattr(lightning_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

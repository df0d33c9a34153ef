"""Architectures of the paper, one folder each: ``torch_model.py`` (plain ``nn.Module``, no
Lightning import) and ``lightning_model.py`` (thin ``LightningModule``), plus a README naming the
table rows and configs it reproduces.

Shared pieces: :mod:`affect.models.backbones` (timm backbones by name, multi-level taps, VGG-FACE
loading) and :mod:`affect.models.multitask` (the Lightning logic every VA / EXPR / AU model
reuses: loss, metrics, multi-domain batches, media, optimiser, prediction; its metrics per stage are
:mod:`affect.models.task_metrics`).

Frame-level multi-task models (Sec. VI):

- :mod:`affect.models.mt_vgg`: ``MTVGG`` / ``MTVGGModule`` (Table IV, MT-VGG row).
- :mod:`affect.models.facebehaviornet`: ``FaceBehaviorNet`` / ``FaceBehaviorNetModule`` (Table VI).

Package ``__init__`` files import nothing heavy, so ``torch_model`` modules import without Lightning;
the Lightning classes load on first attribute access (``affect.models.mt_vgg.MTVGGModule``).
"""

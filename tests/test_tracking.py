"""Validation media (affect/tracking.py): the figures and where log_figure sends them."""

from __future__ import annotations

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from PIL import Image

from affect.labels import EXPR_CLASSES
from affect.tracking import (
    au_f1_figure,
    confusion_matrix_figure,
    figure_to_image,
    log_figure,
    va_histogram_figure,
)


def test_confusion_matrix_figure_shows_counts_and_mean_diagonal():
    cm = torch.tensor([[3, 1], [0, 2]])
    fig = confusion_matrix_figure(cm, ["a", "b"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "2"]
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.75, 0.25], [0.0, 1.0]])
    assert "mean diag 0.875" in ax.get_title()


def test_au_f1_figure_bars_and_nan():
    fig = au_f1_figure(torch.tensor([0.5, float("nan"), 1.0]), [1, 2, 4])
    ax = fig.axes[0]
    assert [round(p.get_height(), 3) for p in ax.patches] == [0.5, 0.0, 1.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AU1", "AU2", "AU4"]
    assert "mean 0.750" in ax.get_title()


def test_va_histogram_counts():
    target = torch.tensor([[0.5, 0.5], [-0.5, -0.5], [0.5, 0.5]])
    fig = va_histogram_figure(target * 0, target, bins=2)
    gt, pred = fig.axes[0], fig.axes[1]
    np.testing.assert_allclose(gt.collections[0].get_array().reshape(2, 2).sum(), 3)
    assert "N=3" in gt.get_title() and "N=3" in pred.get_title()


def test_log_figure_to_csv_logger_writes_png(tmp_path):
    logger = CSVLogger(tmp_path, name="run")
    fig = confusion_matrix_figure(torch.eye(7, dtype=torch.long), EXPR_CLASSES)
    (path,) = log_figure([logger], "val/expr/confmat", fig, step=12)
    assert path.endswith("media/val_expr_confmat_step0000012.png")
    image = Image.open(path)
    assert image.size[0] > 100 and image.size == figure_to_image(fig).size


def test_log_figure_to_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="affect-test")
    try:
        sent = log_figure(
            [logger], "val/au/f1_per_au", au_f1_figure(torch.tensor([0.2, 0.4]), [1, 2]), step=3
        )
    finally:
        logger.experiment.finish()
    assert sent == ["wandb:val/au/f1_per_au"]
    pngs = list(tmp_path.glob("wandb/offline-run-*/files/media/images/val/au/f1_per_au_*.png"))
    assert len(pngs) == 1, sorted(str(p) for p in tmp_path.rglob("*.png"))

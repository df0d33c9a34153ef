"""Media for experiment tracking: validation figures and where they go.

Figures (``matplotlib.figure.Figure``, built without pyplot so nothing global or GUI is touched):

- :func:`confusion_matrix_figure`: EXPR confusion matrix (rows = true class, row-normalised
  colours, counts written in the cells) — the RAF-DB "Diag." criterion is its mean diagonal.
- :func:`au_f1_figure`: per-AU F1 bars (the mean is the ABAW P_AU).
- :func:`va_histogram_figure`: 2-D histograms of ground-truth and predicted (valence, arousal).

:func:`run_summary` is the short table the ``affect`` command prints after ``fit`` / ``test``: the
headline metrics and where the checkpoint, logs, figures and W&B run are.

:func:`log_figure` sends one figure to every active Lightning logger: a ``WandbLogger`` gets a
``wandb.Image`` (``logger.log_image``), any other logger with a log directory (``CSVLogger``,
``TensorBoardLogger``, ...) gets a PNG file ``<log_dir>/media/<name with / -> _>_step<step>.png``.

>>> import torch
>>> fig = confusion_matrix_figure(torch.tensor([[3, 1], [0, 2]]), ["a", "b"])
>>> type(fig).__name__
'Figure'
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

__all__ = [
    "au_f1_figure",
    "confusion_matrix_figure",
    "figure_to_image",
    "log_figure",
    "run_summary",
    "va_histogram_figure",
]

log = logging.getLogger(__name__)


def figure_to_image(fig: Figure, dpi: int = 100) -> Image.Image:
    """Render a figure to an RGB PIL image."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def confusion_matrix_figure(
    confmat: Tensor, class_names: Sequence[str], title: str = "EXPR confusion matrix"
) -> Figure:
    """Confusion matrix ``[C, C]`` of counts (rows = truth): colours row-normalised, counts in the cells."""
    cm = torch.as_tensor(confmat).detach().cpu().double().numpy()
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig = Figure(figsize=(1.0 + 0.8 * len(class_names), 0.8 + 0.8 * len(class_names)))
    ax = fig.subplots()
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, label="row-normalised")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_title(
        f"{title} (mean diag {np.mean(np.diag(norm)[rows[:, 0] > 0]) if (rows > 0).any() else float('nan'):.3f})"
    )
    return fig


def au_f1_figure(f1_per_au: Tensor, au_set: Sequence[int], title: str = "per-AU F1") -> Figure:
    """Bar chart of per-AU F1 (NaN = AU never annotated, drawn as an empty slot)."""
    f1 = torch.as_tensor(f1_per_au).detach().cpu().double().numpy()
    fig = Figure(figsize=(1.0 + 0.45 * len(au_set), 3.0))
    ax = fig.subplots()
    ax.bar(
        range(len(au_set)),
        np.nan_to_num(f1, nan=0.0),
        color=["tab:blue" if np.isfinite(v) else "lightgrey" for v in f1],
    )
    ax.set_xticks(range(len(au_set)), [f"AU{a}" for a in au_set], rotation=90)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("F1")
    mean = np.nanmean(f1) if np.isfinite(f1).any() else float("nan")
    ax.axhline(mean, color="tab:red", linestyle="--", linewidth=1)
    ax.set_title(f"{title} (mean {mean:.3f})")
    return fig


def va_histogram_figure(pred: Tensor, target: Tensor, bins: int = 40) -> Figure:
    """Side-by-side 2-D histograms over the valence-arousal plane [-1, 1]^2: ground truth, prediction.

    ``pred`` / ``target`` ``[N, 2]`` (valence, arousal) rows where both dimensions are annotated.
    """
    p = torch.as_tensor(pred).detach().cpu().double().numpy().reshape(-1, 2)
    t = torch.as_tensor(target).detach().cpu().double().numpy().reshape(-1, 2)
    fig = Figure(figsize=(8.0, 3.8))
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    edges = np.linspace(-1.0, 1.0, bins + 1)
    for ax, data, name in zip(axes, (t, p), ("ground truth", "prediction"), strict=True):
        data = np.clip(data, -1.0, 1.0)
        ax.hist2d(data[:, 0], data[:, 1], bins=[edges, edges], cmap="viridis")
        ax.set_title(f"{name} (N={len(data)})")
        ax.set_xlabel("valence")
        ax.set_aspect("equal")
    axes[0].set_ylabel("arousal")
    return fig


def log_figure(loggers: Sequence[Logger], name: str, fig: Figure, step: int) -> list[str]:
    """Send ``fig`` to every logger; returns where it went (W&B keys / PNG paths).

    W&B: ``logger.log_image(key=name, images=[wandb.Image])`` at ``step`` (the trainer's global
    step). Others: a PNG under ``<logger.log_dir>/media/``. A logger with neither is skipped with a
    log message.
    """
    sent: list[str] = []
    image = None
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            image = image or figure_to_image(fig)
            logger.log_image(key=name, images=[image], step=step)
            sent.append(f"wandb:{name}")
            continue
        log_dir = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
        if not log_dir:
            log.info(
                "log_figure: logger %s has no log directory; figure %r not saved", type(logger).__name__, name
            )
            continue
        path = Path(log_dir) / "media" / f"{name.replace('/', '_')}_step{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
        sent.append(str(path))
    return sent


#: Metric names (after ``{stage}/``) shown first in :func:`run_summary`, in this order.
HEADLINE_METRICS: tuple[str, ...] = (
    "p_mtl", "va/ccc", "va/ccc_v", "va/ccc_a", "va_median/ccc", "expr/f1", "expr/acc", "expr/diag",
    "au/f1", "au/afa", "compound/diag", "compound/f1", "loss",
)  # fmt: skip


def run_summary(trainer, max_rows: int = 14) -> str:
    """A plain-text table of a finished run: headline metrics, best checkpoint, logs, figures, W&B.

    Metrics are the trainer's last logged values (``callback_metrics``); after ``fit`` the validation
    metrics of the last epoch and the monitored metric's best value with its checkpoint.
    """
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
    stages = [s for s in ("test", "val") if any(k.startswith(f"{s}/") for k in metrics)]
    rows: list[tuple[str, str]] = []
    for stage in stages[:1]:
        for name in HEADLINE_METRICS:
            key = f"{stage}/{name}"
            if key in metrics:
                rows.append((key, f"{metrics[key]:.4f}"))
    rows = rows[:max_rows]
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "best_model_path", ""):
        score = ckpt.best_model_score
        rows.append((f"best {ckpt.monitor}", f"{float(score):.4f}" if score is not None else "-"))
        rows.append(("checkpoint", ckpt.best_model_path))
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            rows.append(("W&B run", f"{getattr(run, 'name', '')} {getattr(run, 'dir', '') or ''}".strip()))
        else:
            log_dir = getattr(logger, "log_dir", None)
            if log_dir:
                rows.append((f"{type(logger).__name__}", str(log_dir)))
                media = Path(log_dir) / "media"
                if media.is_dir():
                    rows.append(("figures", str(media)))
    if not rows:
        return "affect: run finished (nothing was logged)"
    width = max(len(k) for k, _ in rows)
    return "\n".join(["affect run summary:"] + [f"  {k:<{width}}  {v}" for k, v in rows])

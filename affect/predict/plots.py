"""Figures of ``affect predict`` (matplotlib ``Figure`` objects, no pyplot, as ``affect.tracking``).

- :func:`timeline_figure` (a video): valence / arousal over time per face track, the stacked EXPR
  probabilities and an AU heat map of the main track (the one with most frames); frames without a
  face are gaps.
- :func:`contact_sheet_figure` (images): the aligned crops with their top expression, VA and the
  AUs above 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from affect.labels import EXPR_CLASSES
from affect.predict.columns import au_columns

AU_ACTIVE = 0.5


def plain(text: str) -> str:
    r"""``text`` shown as it is: matplotlib reads ``$...$`` as math text (an unbalanced one raises).

    >>> plain("price $5 and $x^$.mp4")
    'price \\$5 and \\$x^\\$.mp4'
    """
    return text.replace("$", r"\$")


def _time_axis(rows: pd.DataFrame) -> tuple[np.ndarray, str]:
    t = rows["time_s"].to_numpy(np.float64)
    if np.isfinite(t).all():
        return t, "time (s)"
    return rows["frame"].to_numpy(np.float64), "frame"


def main_track(rows: pd.DataFrame) -> pd.DataFrame:
    """The main face's rows (the track with most frames) plus the frames without a face, by frame."""
    faces = rows[rows["face_detected"] == 1]
    if faces.empty:
        return rows.iloc[:0]
    fid = faces["face_id"].value_counts().idxmax()
    keep = (rows["face_id"] == fid) | (rows["face_detected"] == 0)
    return rows[keep].sort_values("frame")


def timeline_figure(rows: pd.DataFrame, spaces: Mapping, title: str = "") -> Figure:
    """Valence / arousal, stacked EXPR probabilities and an AU heat map over one video's frames."""
    classes = [c for c in (spaces.get("expr_classes") or EXPR_CLASSES) if c in rows.columns]
    aus = [c for c in au_columns(spaces.get("au_set") or []) if c in rows.columns]
    has_va = "valence" in rows.columns
    panels = [p for p, on in (("va", has_va), ("expr", bool(classes)), ("au", bool(aus))) if on] or ["faces"]
    fig = Figure(figsize=(10, 2.4 * len(panels) + 0.4))
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    main = main_track(rows)
    t_all, xlabel = _time_axis(rows.sort_values("frame"))
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "va":
            for fid, track in rows[rows["face_detected"] == 1].groupby("face_id"):
                track = pd.concat([track, rows[rows["face_detected"] == 0]]).sort_values("frame")
                t, _ = _time_axis(track)
                ax.plot(t, track["valence"], label=f"valence (face {fid})")
                ax.plot(t, track["arousal"], linestyle="--", label=f"arousal (face {fid})")
            ax.set_ylim(-1.05, 1.05)
            ax.axhline(0, color="grey", linewidth=0.5)
            ax.set_ylabel("VA")
            ax.legend(loc="upper right", fontsize=7, ncol=2)
        elif panel == "expr":
            t, _ = _time_axis(main)
            probs = np.nan_to_num(main[classes].to_numpy(np.float64), nan=0.0).T
            ax.stackplot(t, probs, labels=classes)
            ax.set_ylim(0, 1)
            ax.set_ylabel("EXPR p")
            ax.legend(loc="upper right", fontsize=7, ncol=4)
        elif panel == "au":
            t, _ = _time_axis(main)
            heat = main[aus].to_numpy(np.float64).T
            extent = (t.min(), t.max() if t.max() > t.min() else t.min() + 1, len(aus) - 0.5, -0.5)
            im = ax.imshow(np.ma.masked_invalid(heat), aspect="auto", vmin=0, vmax=1, cmap="magma",
                           extent=extent, interpolation="nearest")  # fmt: skip
            ax.set_yticks(range(len(aus)), aus, fontsize=7)
            fig.colorbar(im, ax=ax, fraction=0.02, label="AU p")
        else:
            ax.plot(t_all, rows.sort_values("frame")["face_detected"], drawstyle="steps-post")
            ax.set_ylabel("face")
    axes[-1].set_xlabel(xlabel)
    if title:
        axes[0].set_title(plain(title), fontsize=9)
    return fig


def face_caption(row: pd.Series, spaces: Mapping) -> str:
    """Top expression, VA and active AUs of one face row.

    >>> face_caption(pd.Series({"expression": "Happiness", "Happiness": 0.9, "valence": 0.5, "arousal": -0.25,
    ...                         "AU12": 0.8, "AU04": 0.1}), {"au_set": [4, 12]})
    'Happiness 0.90\\nV +0.50 A -0.25\\nAU12'
    """
    lines = []
    if isinstance(row.get("expression"), str) and row["expression"]:
        lines.append(f"{row['expression']} {row[row['expression']]:.2f}")
    if "valence" in row and np.isfinite(row["valence"]):
        lines.append(f"V {row['valence']:+.2f} A {row['arousal']:+.2f}")
    aus = [c for c in au_columns(spaces.get("au_set") or []) if c in row and row[c] > AU_ACTIVE]
    if aus:
        lines.append(" ".join(aus[:6]))
    return "\n".join(lines)


def contact_sheet_figure(rows: pd.DataFrame, crops: np.ndarray, spaces: Mapping, cols: int = 6) -> Figure:
    """A grid of the aligned face crops (``rows["crop"]`` indexes ``crops``) with their captions."""
    n = len(rows)
    cols = max(1, min(cols, n))
    nrows = (n + cols - 1) // cols
    fig = Figure(figsize=(1.9 * cols, 2.5 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (_, row) in zip(axes, rows.iterrows(), strict=False):
        ax.imshow(crops[int(row["crop"])])
        name = str(row["input"]).rsplit("/", 1)[-1]
        ax.set_title(plain(f"{name[:22]} #{int(row['face_id'])}"), fontsize=7)
        ax.text(0.5, -0.04, face_caption(row, spaces), transform=ax.transAxes, ha="center", va="top", fontsize=7)
    return fig

"""SEWA (Kossaifi et al., TPAMI 2019): video chats with continuous valence / arousal / liking traces.

Two label layouts are read (``data_cards/sewa.md``); both give traces in [-1, 1] over time:

- ``layout="avec"`` (the AVEC 2017 / 2019 sub-challenge release, the common one)::

      <root>/labels/Train_01.csv    lines "name;timestamp;arousal;valence;liking" (a header line is
                                    optional; ";" or ","), one gold-standard trace already fused
                                    over the annotators by the organisers, 10 Hz
      <root>/video/Train_01.avi     (any common video suffix)

  Recording prefixes give the official partitions: ``Train_`` -> train, ``Devel_`` -> val,
  ``Test_`` -> test (the AVEC test labels are withheld: a test recording without a label file
  is simply absent).
- ``layout="annotators"`` (per-annotator traces, e.g. converted from the SEWA DB release)::

      <root>/annotations/valence/<recording>.csv   header "time,<annotator>,<annotator>,..."
      <root>/annotations/arousal/<recording>.csv
      <root>/video/<recording>.avi

  The annotators are averaged (mean over the annotators present at each time; the SEWA DB
  gold standard is also a mean), and every recording is "train" (use ``val_fraction``).

Alignment to frames: each video is decoded once into ``<frames_dir>/<recording>/00001.jpg``
(``affect.data.video``); a frame's label is the trace interpolated at the frame's presentation
time (``interpolation="linear"`` or ``"nearest"``). Frames before the first label time or more
than one label period after the last are skipped and counted. Liking is not in our label spaces
and is ignored. Subject = recording (each SEWA recording shows one participant).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.corpora._video import VideoCorpusDataModule
from affect.data.manifest import LoadReport, counted, stack_tables
from affect.data.textio import read_text
from affect.data.video import video_frame_paths
from affect.io import VIDEO_SUFFIXES, MediaReadError

CORPUS = "sewa"
LAYOUTS = ("avec", "annotators")
AVEC_SPLITS = {"Train": "train", "Devel": "val", "Test": "test"}


class Trace:
    """A VA trace: ``time`` [N] ascending seconds, ``va`` [N, 2] (valence, arousal)."""

    def __init__(self, time: np.ndarray, va: np.ndarray) -> None:
        order = np.argsort(time, kind="stable")
        self.time, self.va = np.asarray(time, np.float64)[order], np.asarray(va, np.float64)[order]

    @property
    def step(self) -> float:
        return float(np.median(np.diff(self.time))) if len(self.time) > 1 else 0.0

    def at(self, t: np.ndarray, interpolation: str = "linear") -> tuple[np.ndarray, np.ndarray]:
        """Labels ``[T, 2]`` at times ``t`` and the bool mask of times the trace covers.

        >>> tr = Trace(np.array([0.0, 0.1, 0.2]), np.array([[0, 0], [1, -1], [0, 0]]))
        >>> va, ok = tr.at(np.array([-0.05, 0.05, 0.26, 0.31]))
        >>> va[1].tolist(), ok.tolist()
        ([0.5, -0.5], [False, True, True, False])
        """
        t = np.asarray(t, np.float64)
        ok = (t >= self.time[0] - 1e-9) & (t <= self.time[-1] + self.step + 1e-9)
        if interpolation == "linear":
            va = np.stack([np.interp(t, self.time, self.va[:, d]) for d in range(2)], axis=1)
        elif interpolation == "nearest":
            if len(self.time) == 1:
                return np.repeat(self.va, len(t), axis=0), ok
            idx = np.clip(np.searchsorted(self.time, t), 1, len(self.time) - 1)
            va = self.va[np.where(t - self.time[idx - 1] <= self.time[idx] - t, idx - 1, idx)]
        else:
            raise ValueError(f"interpolation must be 'linear' or 'nearest', got {interpolation!r}")
        return va, ok


def _rows(path: Path) -> list[list[str]]:
    text = read_text(path)
    delimiter = ";" if text.count(";") >= text.count(",") else ","
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_avec_labels(path: Path, report: LoadReport) -> Trace | None:
    """One AVEC label file ``name;timestamp;arousal;valence;liking`` -> trace (bad lines counted)."""
    times, va = [], []
    for lineno, row in enumerate(_rows(path), start=1):
        cells = [c.strip().strip("'\"") for c in row]
        if not cells or not any(cells):
            continue
        if lineno == 1 and not _is_number(cells[1] if len(cells) > 1 else ""):
            continue  # header
        try:
            if len(cells) < 4:
                raise ValueError
            t, arousal, valence = float(cells[1]), float(cells[2]), float(cells[3])
            if not all(np.isfinite((t, arousal, valence))) or max(abs(arousal), abs(valence)) > 1.0:
                raise ValueError
        except ValueError:
            report.skip("malformed label line", example=f"{path.name}:{lineno}: {';'.join(row)[:60]!r}")
            continue
        times.append(t)
        va.append((valence, arousal))
    if not times:
        report.skip("label file without valid lines", example=path.name)
        return None
    return Trace(np.array(times), np.array(va))


def read_annotator_trace(path: Path, report: LoadReport) -> tuple[np.ndarray, np.ndarray] | None:
    """``time,<annotator>...`` -> (time [N], mean over annotators [N]); bad lines counted."""
    rows = _rows(path)
    if not rows or len(rows[0]) < 2:
        report.skip("annotation file without annotator columns", example=path.name)
        return None
    times, means = [], []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        try:
            if len(row) != len(rows[0]):
                raise ValueError
            t = float(row[0])
            vals = np.array([float(c) if c.strip() else np.nan for c in row[1:]])
            if not np.isfinite(t) or np.all(np.isnan(vals)) or np.nanmax(np.abs(vals)) > 1.0:
                raise ValueError
        except ValueError:
            report.skip("malformed label line", example=f"{path.parent.name}/{path.name}:{lineno}: {','.join(row)[:60]!r}")
            continue
        times.append(t)
        means.append(float(np.nanmean(vals)))
    if not times:
        report.skip("label file without valid lines", example=path.name)
        return None
    return np.array(times), np.array(means)


def _find_video(folder: Path, recording: str) -> Path:
    for suffix in VIDEO_SUFFIXES:
        if (folder / f"{recording}{suffix}").is_file():
            return folder / f"{recording}{suffix}"
    return folder / f"{recording}.avi"


def _traces(root: Path, layout: str, report: LoadReport) -> dict[str, tuple[Trace, str]]:
    """``{recording: (trace, split)}`` for the chosen layout."""
    out: dict[str, tuple[Trace, str]] = {}
    if layout == "avec":
        folder = root / "labels"
        if not folder.is_dir():
            raise FileNotFoundError(f"SEWA (AVEC layout) labels not found: expected the folder {folder}")
        for path in sorted(folder.glob("*.csv")):
            split = AVEC_SPLITS.get(path.stem.split("_")[0])
            if split is None:
                report.skip("label file not named Train_/Devel_/Test_<n>.csv", example=path.name)
                continue
            trace = read_avec_labels(path, report)
            if trace is not None:
                out[path.stem] = (trace, split)
        return out
    if layout != "annotators":
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    folders = {d: root / "annotations" / d for d in ("valence", "arousal")}
    for d, folder in folders.items():
        if not folder.is_dir():
            raise FileNotFoundError(f"SEWA (annotators layout) {d} traces not found: expected the folder {folder}")
    recordings = sorted({p.stem for f in folders.values() for p in f.glob("*.csv")})
    for rec in recordings:
        parts = {}
        for d, folder in folders.items():
            path = folder / f"{rec}.csv"
            if not path.is_file():
                report.skip(f"recording without a {d} file", example=rec)
                break
            parts[d] = read_annotator_trace(path, report)
            if parts[d] is None:
                break
        else:
            (tv, v), (ta, a) = parts["valence"], parts["arousal"]
            if len(tv) != len(ta) or not np.allclose(tv, ta):
                a = np.interp(tv, ta, a)  # arousal resampled onto the valence times
                report.skip("valence/arousal time stamps differ (arousal interpolated)", example=rec)
            out[rec] = (Trace(tv, np.stack([v, a], axis=1)), "train")
    return out


def make_sewa_manifest(
    root: str | Path,
    layout: str = "avec",
    interpolation: str = "linear",
    video_dir: str = "video",
    frames_dir: str | None = None,
    extract: bool = True,
    fps: float | None = None,
    require_media: bool = True,
    quality: int = 95,
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse SEWA into one row per video frame covered by the VA trace.

    Args:
        root: the release folder.
        layout: "avec" or "annotators" (module docstring).
        interpolation: "linear" or "nearest" trace-to-frame alignment.
        video_dir: folder of ``<recording>.<video suffix>`` under ``root``.
        frames_dir: where frames are extracted / read (default ``<root>/frames``).
        extract: decode videos (cached); False reads user-extracted frames from ``frames_dir``.
        fps: frame rate of user-extracted frames without a ``frames.json`` (frame k at (k-1)/fps).
        require_media: False = one row per label sample (path = video file, frame = sample index),
            no decoding; for checking label files.
        quality: JPEG quality of extracted frames.
    """
    root = Path(root)
    report = LoadReport(CORPUS)
    traces = _traces(root, layout, report)
    frames_root = Path(frames_dir) if frames_dir is not None else root / "frames"
    tables: list[pd.DataFrame] = []
    for rec, (trace, split) in traces.items():
        video = _find_video(root / video_dir, rec)
        if not require_media:
            numbers, va = np.arange(1, len(trace.time) + 1), trace.va
            paths = [video.relative_to(root).as_posix()] * len(numbers)
        else:
            try:
                files, times = video_frame_paths(video, frames_root / rec, root, extract, quality)
            except MediaReadError as err:
                report.skip("video missing or undecodable", example=str(err))
                continue
            numbers = np.array(sorted(files), dtype=np.int64)
            if times is None:
                if fps is None:
                    raise ValueError(f"{frames_root / rec} has no frames.json: pass fps to time user-extracted frames")
                times = (numbers - 1) / fps
            else:
                times = times[numbers - 1]
            va, ok = trace.at(times, interpolation)
            if (~ok).any():
                report.skip("video frame outside the label trace", int((~ok).sum()), example=f"{rec} frame {numbers[~ok][0]}")
            numbers, va = numbers[ok], va[ok]
            paths = [files[int(k)] for k in numbers]
        tables.append(pd.DataFrame({
            "path": paths, "corpus": CORPUS, "split": split, "subject": rec, "video": rec,
            "frame": numbers, "valence": va[:, 0], "arousal": va[:, 1],
        }))
    return counted(stack_tables(tables), report)


class SEWADataModule(VideoCorpusDataModule):
    """SEWA frames (or sequences per recording) for valence-arousal; see :func:`make_sewa_manifest`."""

    corpus = CORPUS

    def __init__(
        self,
        root: str,
        layout: str = "avec",
        interpolation: str = "linear",
        video_dir: str = "video",
        frames_dir: str | None = None,
        extract: bool = True,
        fps: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(root, **kwargs)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.hold_parser_args(locals())

"""Reading the prepared store: raw uint8 face crops in memory-mapped shards + a labels table.

Written once by ``affect prepare`` (:mod:`affect.store.writer`), read at training time with no
image decoding: a batch is one fancy-indexing gather from the memory map.

The layout is :mod:`affect.store.format`'s.

Datasets produce the batch dict of the project conventions: "image" uint8 [B, 3, S, S]
(models scale with ``x.float() / 127.5 - 1`` to [-1, 1], paper Sec. IV), "va"/"va_mask",
"expr", "au"/"au_mask", "landmarks" float [B, 68, 2] normalised to [0, 1] of the crop (as
``affect.data.datasets`` gives them; the shards keep crop pixels) + "landmarks_mask",
"corpus"/"video" lists, "frame" long; sequence batches add a time axis and "frame_mask".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from affect.data.manifest import AU_COLUMNS, task_mask
from affect.data.windows import window_starts
from affect.errors import InputFileError, MissingInputError
from affect.store.format import HEADER_FILE, STORE_FORMAT, read_json, shard_name

log = logging.getLogger(__name__)


class ShardedArray:
    """Row-indexable view over per-shard ``np.memmap`` files (opened lazily, per process).

    ``arr[np.array([...])]`` gathers rows from any shards into one array, in the order given.
    """

    def __init__(self, files: Sequence[Path], counts: Sequence[int], row_shape: tuple[int, ...], dtype: str):
        self.files = [Path(f) for f in files]
        self.counts = np.asarray(counts, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self._maps: list[np.ndarray] | None = None

    def __getstate__(self) -> dict:  # DataLoader workers re-open the maps themselves
        state = self.__dict__.copy()
        state["_maps"] = None
        return state

    @property
    def maps(self) -> list[np.ndarray]:
        if self._maps is None:
            # plain ndarray views of the maps: np.memmap's own __getitem__ adds ~10 us per call
            self._maps = [
                np.memmap(f, dtype=self.dtype, mode="r", shape=(int(n), *self.row_shape)).view(np.ndarray) if n else
                np.zeros((0, *self.row_shape), self.dtype)
                for f, n in zip(self.files, self.counts, strict=True)
            ]
        return self._maps

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.starts[-1]), *self.row_shape)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return np.asarray(self[np.array([index])][0])
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"row index out of range for a store of {n} rows")
        idx = np.where(idx < 0, idx + n, idx)
        maps = self.maps
        shard = np.searchsorted(self.starts, idx, side="right") - 1
        local = (idx - self.starts[shard]).tolist()
        out = np.empty((idx.size, *self.row_shape), self.dtype)
        # one row copy straight from the page cache into the batch: measured faster than fancy
        # indexing per shard (which gathers into a temporary and scatters again)
        for j, (s, i) in enumerate(zip(shard.tolist(), local, strict=True)):
            out[j] = maps[s][i]
        return out


class Store:
    """An opened store: ``.manifest`` (labels table), ``.images`` [N, 3, S, S] uint8,
    ``.landmarks`` [N, 68, 2] float32, ``.audio`` [N, 1, H, W] uint8 or None, ``.report``, ``.header``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        head = self.path / HEADER_FILE
        if not head.is_file():
            raise MissingInputError(
                f"{str(self.path)!r} is not a complete affect store (no store.json); "
                "run or resume `affect prepare` to finish it"
            )
        self.header = read_json(head, "store header")
        if self.header.get("format") != STORE_FORMAT:
            raise InputFileError(f"{head} is not an {STORE_FORMAT} header: format={self.header.get('format')!r}")
        self.manifest = pd.read_csv(self.path / "labels.csv", keep_default_na=False, na_values=[""],
                                    dtype={"path": str, "subject": str, "video": str, "corpus": str})
        for col in ("subject", "video"):
            self.manifest[col] = self.manifest[col].fillna("").astype(str)
        self.report = json.loads((self.path / "report.json").read_text())
        shards = self.header["shards"]
        for k, s in enumerate(shards):  # the header names only the store's own shard files
            if s.get("name") != shard_name(k):
                raise InputFileError(f"{head}: shard {k} is named {s.get('name')!r}, not {shard_name(k)!r}")
        counts = [s["n"] for s in shards]
        sdir = self.path / "shards"
        size = int(self.header["image_size"])
        self.image_size = size
        self.images = ShardedArray([sdir / f"{s['name']}.u8" for s in shards], counts, (3, size, size), "uint8")
        self.landmarks = ShardedArray([sdir / f"{s['name']}.lmk" for s in shards], counts, (68, 2), "float32")
        audio = self.header.get("audio")
        self.audio = None
        if audio:
            shape = (1, int(audio["height"]), int(audio["width"]))
            self.audio = ShardedArray([sdir / f"{s['name']}.spec" for s in shards], counts, shape, "uint8")
        if len(self.manifest) != len(self.images):
            raise ValueError(f"labels.csv has {len(self.manifest)} rows but the shards hold {len(self.images)}")


def open_store(path: str | Path) -> Store:
    """Open a complete store written by ``affect prepare``."""
    return Store(path)


def _label_arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-row label arrays (numpy: gathering 401 rows is microseconds, torch indexing is not)."""
    va = df[["valence", "arousal"]].to_numpy(np.float32)
    au = df[list(AU_COLUMNS)].to_numpy(np.float32)
    return {
        "va": np.nan_to_num(va, nan=0.0),
        "va_mask": np.isfinite(va),
        "expr": df["expr"].to_numpy(np.int64, copy=True),
        "au": np.nan_to_num(au, nan=0.0),
        "au_mask": np.isfinite(au),
        "frame": df["frame"].to_numpy(np.int64, copy=True),
        "landmarks_mask": df["has_landmarks"].to_numpy(bool, copy=True),
    }


def _select_tasks(df: pd.DataFrame, tasks: Sequence[str] | None) -> np.ndarray:
    if not tasks:
        return np.ones(len(df), bool)
    keep = np.zeros(len(df), bool)
    for t in tasks:
        keep |= task_mask(df, t)
    return keep


class StoreFrameDataset(torch.utils.data.Dataset):
    """Frames of one split of a store; whole batches via ``__getitems__`` (no image decoding).

    Only ``status == "ok"`` slots are used (frames without a face are counted in the store's
    report, not served). ``tasks`` keeps rows annotated for any of "va", "expr", "au"
    (``task`` is the single-task spelling used by ``CorpusDataModule``). ``table`` replaces the
    store's own table (same columns, e.g. with a re-drawn validation split).

    Use ``DataLoader(ds, batch_size=401, shuffle=True, collate_fn=ds.collate_fn)``: the
    loader then calls ``__getitems__`` once per batch and ``collate_fn`` passes the dict through.
    ``num_workers=0`` is the fast setting here (benchmarks/bench_loader.py: ~90k images/s on 2
    shared cores vs ~10-20k with workers, which must ship each 11 MB batch between processes).
    """

    def __init__(self, store_dir: str, split: str = "train", tasks: list[str] | None = None,
                 with_landmarks: bool = True, task: str | None = None, table: pd.DataFrame | None = None):
        self.store = open_store(store_dir)
        df = self.store.manifest if table is None else table  # table: store rows re-split by the caller
        tasks = [*(tasks or []), *([task] if task else [])]
        keep = (df["split"] == split).to_numpy() & (df["status"] == "ok").to_numpy() & _select_tasks(df, tasks)
        self.df = df[keep].reset_index(drop=True)
        if len(self.df) == 0:
            raise ValueError(f"store {store_dir!r} has no usable rows for split={split!r}, tasks={tasks}")
        self.rows = self.df["row"].to_numpy(np.int64, copy=True)
        self.labels = _label_arrays(self.df)
        self.corpus = self.df["corpus"].astype(str).tolist()
        self.video = self.df["video"].astype(str).tolist()
        self.with_landmarks = with_landmarks
        self.any_landmarks = bool(self.labels["landmarks_mask"].any())

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: Sequence[int]) -> dict:
        # numpy only, wrapped with torch.from_numpy: torch ops here go through the intra-op thread
        # pool, which costs milliseconds per call on a loaded CPU (measured: torch.zeros 13 ms)
        idx = np.asarray(indices, dtype=np.int64)
        rows = self.rows[idx]
        batch = {k: torch.from_numpy(v[idx]) for k, v in self.labels.items()}
        batch["image"] = torch.from_numpy(self.store.images[rows])
        if self.with_landmarks and self.any_landmarks:
            batch["landmarks"] = torch.from_numpy(np.nan_to_num(self.store.landmarks[rows], nan=0.0) / self.store.image_size)
        elif self.with_landmarks:
            batch["landmarks"] = torch.from_numpy(np.zeros((len(rows), 68, 2), np.float32))
        else:
            del batch["landmarks_mask"]
        batch["corpus"] = [self.corpus[i] for i in idx]
        batch["video"] = [self.video[i] for i in idx]
        return batch

    def __getitem__(self, index: int) -> dict:
        b = self.__getitems__([index])
        return {k: (v[0] if not isinstance(v, list) else v[0]) for k, v in b.items()}

    @staticmethod
    def collate_fn(batch: dict) -> dict:
        """Identity: ``__getitems__`` already returns the collated batch."""
        return batch


def _faceless_frames_into_tracks(df: pd.DataFrame) -> pd.DataFrame:
    """Give each row without a usable face (``face_index`` -1) the face index of every face track of its
    video (one copy per track; track 0 when the video has no face at all), so that it sits in the
    track at its frame position instead of forming a separate track of black images."""
    faceless = (df["face_index"] < 0).to_numpy()
    if not faceless.any():
        return df
    keys = ["corpus", "video"]
    tracks = df.loc[~faceless, [*keys, "face_index"]].drop_duplicates()
    moved = df[faceless].drop(columns="face_index").merge(tracks, on=keys, how="left")
    moved["face_index"] = moved["face_index"].fillna(0).astype(np.int64)
    return pd.concat([df[~faceless], moved[df.columns]], ignore_index=True)


class StoreSequenceDataset(torch.utils.data.Dataset):
    """Windows of ``length`` consecutive frames of each video (one face track per video).

    Videos are the rows with ``video != ""`` grouped by (corpus, video, face_index) and sorted
    by ``frame``; windows follow the one rule of :func:`affect.data.windows.window_starts` (every
    ``stride`` frames, default ``length``, no overlap; the last window shortened and padded, so each
    frame is evaluated once), as the image-folder :class:`~affect.data.datasets.SequenceDataset`'s.
    Padding has ``frame_mask`` False. A frame without a usable face
    (status "no_face" or "corrupt", stored with ``face_index`` -1) stays in every face track of
    its video at its time position (``frame_mask`` True: the track keeps its timing), with a
    black image, ``face_mask`` False and *all its labels masked* (``va_mask``/``au_mask`` False,
    ``expr`` -1, ``landmarks_mask`` False), so it never yields a loss term or a metric update;
    how many labelled frames were lost this way is logged as a warning and kept in
    ``n_labelled_without_face``. Adds "audio" float [B, T, 1, H, W] in [-1, 1] when the store
    has spectrograms.
    """

    def __init__(self, store_dir: str, split: str = "train", length: int = 80, stride: int | None = None,
                 tasks: list[str] | None = None, task: str | None = None, table: pd.DataFrame | None = None):
        tasks = [*(tasks or []), *([task] if task else [])]
        if length < 1:
            raise ValueError(f"length must be >= 1; got {length}")
        self.store = open_store(store_dir)
        self.length, self.stride = length, stride or length
        df = self.store.manifest if table is None else table  # table: store rows re-split by the caller
        keep = (df["split"] == split).to_numpy() & (df["video"] != "").to_numpy() & _select_tasks(df, tasks)
        df = _faceless_frames_into_tracks(df[keep])
        df = df.sort_values(["corpus", "video", "face_index", "frame"], kind="stable")
        self.df = df.reset_index(drop=True)
        if len(self.df) == 0:
            raise ValueError(f"store {store_dir!r} has no video frames for split={split!r}")
        self.labels = _label_arrays(self.df)
        self.rows = self.df["row"].to_numpy(np.int64, copy=True)
        self.face_ok = (self.df["status"] == "ok").to_numpy(bool, copy=True)
        lost = ~self.face_ok  # no usable face: the image never counts, so neither may its labels
        labelled = self.labels["va_mask"].any(1) | self.labels["au_mask"].any(1) | (self.labels["expr"] >= 0)
        self.n_labelled_without_face = int(self.df.loc[lost & labelled, "src_row"].nunique())
        self.labels["va_mask"][lost] = False
        self.labels["au_mask"][lost] = False
        self.labels["expr"][lost] = -1
        self.labels["landmarks_mask"][lost] = False
        if self.n_labelled_without_face:
            log.warning(
                "store %s, split %r: %d labelled video frames have no usable face (no_face / corrupt); they keep "
                "their place in the sequences with their labels masked", store_dir, split, self.n_labelled_without_face)
        windows = []
        for g in self.df.groupby(["corpus", "video", "face_index"], sort=False).indices.values():
            g = np.sort(g)
            n = len(g)
            for s in window_starts(n, length, self.stride):
                w = np.full(length, -1, np.int64)
                part = g[s : s + length]
                w[: len(part)] = part
                windows.append(w)
        self.windows = np.stack(windows)
        self.names = [(str(c), str(v)) for c, v in zip(self.df["corpus"], self.df["video"], strict=True)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitems__(self, indices: Sequence[int]) -> dict:
        win = self.windows[np.asarray(indices, dtype=np.int64)]  # [B, T] positions in self.df, -1 = pad
        B, T = win.shape
        valid = win >= 0
        pos = np.where(valid, win, 0)
        lab = {k: v[pos] for k, v in self.labels.items()}
        lab["va_mask"] &= valid[..., None]
        lab["au_mask"] &= valid[..., None]
        lab["landmarks_mask"] &= valid
        lab["expr"] = np.where(valid, lab["expr"], -1)
        batch = {k: torch.from_numpy(v) for k, v in lab.items()}
        rows = self.rows[pos.ravel()]
        face = self.face_ok[pos] & valid
        img = self.store.images[rows].reshape(B, T, *self.store.images.row_shape)
        img[~face] = 0
        batch["image"] = torch.from_numpy(img)
        lmk = np.nan_to_num(self.store.landmarks[rows], nan=0.0).reshape(B, T, 68, 2)
        batch["landmarks"] = torch.from_numpy(lmk / self.store.image_size)
        if self.store.audio is not None:
            a = self.store.audio[rows].reshape(B, T, *self.store.audio.row_shape).astype(np.float32) / 127.5 - 1.0
            a[~valid] = -1.0
            batch["audio"] = torch.from_numpy(a)
        batch["frame_mask"] = torch.from_numpy(valid)
        batch["face_mask"] = torch.from_numpy(face)
        batch["corpus"] = [self.names[w[0]][0] for w in pos]
        batch["video"] = [self.names[w[0]][1] for w in pos]
        return batch

    def __getitem__(self, index: int) -> dict:
        b = self.__getitems__([index])
        return {k: v[0] for k, v in b.items()}

    @staticmethod
    def collate_fn(batch: dict) -> dict:
        """Identity: ``__getitems__`` already returns the collated batch."""
        return batch

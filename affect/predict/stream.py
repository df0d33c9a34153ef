"""The face stream of ``affect predict``: faces extracted input by input, batched for the model, and
handed to the writer in input order as soon as their predictions are in.

:class:`FaceStream` is the ``IterableDataset`` of :class:`~affect.predict.datamodule.MediaDataModule`.
It pulls pieces of rows from :meth:`affect.predict.media.FaceExtractor.stream` (one detection batch
of a video's frames at a time), keeps each usable face's crop until it is batched, and yields:

- frame models: batches of ``batch_size`` faces (``image`` uint8 ``[N, 3, S, S]``, ``landmarks``
  ``[N, 68, 2]`` zeros and ``landmarks_mask`` False — MTCNN gives 5 points, not 68 — and ``row``
  ``[N]``, the face's row id);
- sequence models: windows of ``window_length`` consecutive faces of one (input, ``face_id``) track
  (``image`` ``[B, T, 3, S, S]``, ``frame_mask`` ``[B, T]`` False on padding, ``row`` ``[B, T]`` -1 on
  padding; padding repeats the last face). A window closes when it is full, when its track has
  ended (not seen for more than ``max_gap_frames`` frames, so the tracker cannot extend it) or when
  its input ends: the windows of :func:`~affect.predict.datamodule.track_windows`;
- A/V models also get ``audio`` uint8 ``[..., 1, A, A]``, each face's frame's spectrogram image.

The writer (the ``sink``: :class:`~affect.predict.writer.MediaPredictionWriter`) passes the model's
outputs back by row id (:meth:`receive`); rows leave the stream, in order, once every row before
them is done (:meth:`release` -> ``sink.write_rows``), and an input is finished
(``sink.finish_input``) once all its rows have left. So memory is bounded by the rows waiting for
the model: partial batches are sent at the end of each video and whenever more than
``max_pending`` rows wait (then a sequence model's open windows close early too).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import IterableDataset, default_collate

NUM_LANDMARKS = 68


class FaceStream(IterableDataset):
    """Rows of faces on their way from the extractor through the model to the writer (module docstring)."""

    def __init__(
        self, extractor, inputs: list[str], sink, *, batch_size: int, window_length: int = 0,
        audio: bool = False, max_pending: int = 4096, max_gap_frames: int = 10, progress: bool = False,
    ) -> None:  # fmt: skip
        self.extractor, self.inputs, self.sink = extractor, list(inputs), sink
        self.batch_size, self.window_length, self.audio = batch_size, window_length, audio
        self.max_pending, self.max_gap_frames, self.progress = max_pending, max_gap_frames, progress
        self.extract_seconds = 0.0
        self._reset()

    def _reset(self) -> None:
        self.rows: dict[int, dict] = {}  # id -> row, until released
        self.arrays: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}  # id -> (crop, spectrogram) until batched
        self.sheet: dict[int, np.ndarray] = {}  # id -> crop of an image face, until released (contact sheet)
        self.preds: dict[int, dict[str, np.ndarray]] = {}
        self.waiting: set[int] = set()
        self.queue: list[int] = []  # frame models: faces not yet batched
        self.open: dict[tuple[str, int], tuple[list[int], int]] = {}  # track -> (its window's ids, last frame)
        self.ready: list[list[int]] = []  # sequence models: full / closed windows not yet batched
        self.ends: list[tuple[int, object]] = []  # (first id after the input, its report)
        self.next_id = self.released = 0

    # ------------------------------------------------------------------ producing batches
    def __iter__(self) -> Iterator[dict]:
        from tqdm.auto import tqdm

        self._reset()
        with tqdm(desc="affect predict: faces", unit="frame", disable=not self.progress) as bar:
            pieces = self.extractor.stream(self.inputs, progress=bar.update)
            while True:
                start = time.perf_counter()
                item = next(pieces, None)
                self.extract_seconds += time.perf_counter() - start
                if item is None:
                    break
                piece, report = item
                self._ingest(piece)
                force = self.pending > self.max_pending
                if report is not None:
                    self._end_input(report)
                    force |= report.kind == "video"
                self.release()
                yield from self._batches(force)
        yield from self._batches(True)

    @property
    def pending(self) -> int:
        return self.next_id - self.released

    def _ingest(self, piece) -> None:
        latest: dict[str, int] = {}
        for r in piece.rows:
            i = self.next_id
            self.next_id += 1
            self.rows[i] = r
            spec = r.get("spec", -1)
            if r["crop"] < 0 or (self.audio and spec < 0):
                continue
            crop = piece.crops[r["crop"]]
            self.arrays[i] = (crop, piece.audio[spec] if self.audio else None)
            if r["kind"] == "image":
                self.sheet[i] = crop
            self.waiting.add(i)
            if self.window_length <= 0:
                self.queue.append(i)
                continue
            track = (r["input"], r["face_id"])
            ids, _ = self.open.get(track, ([], 0))
            ids.append(i)
            self.open[track] = (ids, r["frame"])
            if len(ids) >= self.window_length:
                self.ready.append(self.open.pop(track)[0])
            latest[r["input"]] = max(latest.get(r["input"], 0), r["frame"])
        for track, (_, last) in list(self.open.items()):  # tracks the tracker has ended
            if track[0] in latest and latest[track[0]] - last > self.max_gap_frames:
                self.ready.append(self.open.pop(track)[0])

    def _end_input(self, report) -> None:
        for track in [t for t in self.open if t[0] == report.input]:
            self.ready.append(self.open.pop(track)[0])
        self.ends.append((self.next_id, report))

    def _batches(self, force: bool) -> Iterator[dict]:
        todo = self.ready if self.window_length > 0 else self.queue
        if force and self.window_length > 0 and self.pending > self.max_pending:
            self.ready.extend(ids for ids, _ in self.open.values())
            self.open.clear()
        while len(todo) >= self.batch_size or (force and todo):
            items, todo[:] = todo[: self.batch_size], todo[self.batch_size :]
            yield self._collate(items)

    def _collate(self, items: list) -> dict:
        if self.window_length <= 0:
            return default_collate([self._item([i]) for i in items])
        out = []
        for ids in items:
            pad = self.window_length - len(ids)
            item = self._item(ids + [ids[-1]] * pad)
            item["row"] = torch.tensor(ids + [-1] * pad, dtype=torch.int64)
            item["frame_mask"] = torch.arange(self.window_length) < len(ids)
            out.append(item)
        for i in {i for ids in items for i in ids}:
            del self.arrays[i]
        return default_collate(out)

    def _item(self, ids: list[int]) -> dict:
        """Batch keys of one face (one id: no time axis, frame models) or one window of faces."""
        crops = np.stack([self.arrays[i][0] for i in ids])
        image = torch.from_numpy(crops).permute(0, 3, 1, 2)
        single = self.window_length <= 0
        item = {
            "image": image[0] if single else image,
            "landmarks": torch.zeros((NUM_LANDMARKS, 2) if single else (len(ids), NUM_LANDMARKS, 2)),
            "landmarks_mask": torch.zeros(() if single else (len(ids),), dtype=torch.bool),
            "row": torch.tensor(ids[0] if single else ids, dtype=torch.int64),
        }
        if self.audio:
            spec = torch.from_numpy(np.stack([self.arrays[i][1] for i in ids]))
            item["audio"] = spec[0] if single else spec
        if single:
            del self.arrays[ids[0]]
        return item

    def example_batch(self, image_size: int, audio_size: int = 0) -> dict:
        """A blank batch of one face (frame models) or one full window, shaped as the real ones."""
        t = (1,) if self.window_length <= 0 else (1, self.window_length)
        batch = {
            "image": torch.zeros((*t, 3, image_size, image_size), dtype=torch.uint8),
            "landmarks": torch.zeros((*t, NUM_LANDMARKS, 2)),
            "landmarks_mask": torch.zeros(t, dtype=torch.bool),
            "row": torch.zeros(t, dtype=torch.int64),
        }
        if self.window_length > 0:
            batch["frame_mask"] = torch.ones(t, dtype=torch.bool)
        if self.audio:
            batch["audio"] = torch.zeros((*t, 1, audio_size, audio_size), dtype=torch.uint8)
        return batch

    # ------------------------------------------------------------------ predictions back, rows out
    def receive(self, rows: torch.Tensor, prediction: Mapping) -> None:
        """The model's outputs for a batch (``rows``: its ``row`` key; -1 = padding), by row id."""
        rows = rows.detach().cpu()
        keep = rows >= 0
        ids = rows[keep].tolist()
        for key, value in prediction.items() if isinstance(prediction, Mapping) else ():
            if isinstance(value, torch.Tensor) and value.shape[: rows.ndim] == rows.shape:
                values = value.detach().float().cpu()[keep].numpy()
                for i, v in zip(ids, values, strict=True):
                    self.preds.setdefault(i, {})[key] = v
        self.waiting.difference_update(ids)
        self.release()

    def release(self) -> None:
        """Hand every row whose predictions are in (and every row before it) to the sink, input by
        input, and finish the inputs all of whose rows have left."""
        while True:
            progressed = False
            while self.ends and self.ends[0][0] <= self.released:
                self.sink.finish_input(self.ends.pop(0)[1])
                progressed = True
            stop = self.released
            while stop < self.next_id and stop not in self.waiting:
                stop += 1
            if stop > self.released:  # the done rows of the first input among them
                name = self.rows[self.released]["input"]
                ids = [i for i in range(self.released, stop) if self.rows[i]["input"] == name]
                self.sink.write_rows([self.rows.pop(i) for i in ids], [self.preds.pop(i, None) for i in ids],
                                     [self.sheet.pop(i, None) for i in ids])  # fmt: skip
                self.released = ids[-1] + 1
                progressed = True
            if not progressed:
                return

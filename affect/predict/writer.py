"""``MediaPredictionWriter``: a Lightning ``BasePredictionWriter`` that turns ``predict_step`` outputs
on a :class:`~affect.predict.datamodule.MediaDataModule` into tables, plots and an annotated video.

Per batch it keeps the model's outputs (``va`` [N, 2] / [B, T, 2], softmax ``expr`` [N, 7], sigmoid
``au`` [N, A], compound ``probs`` / ``scores``) by the batch's ``row`` key (the face's row in the
datamodule's table; padding -1). At the end of prediction it writes into ``output_dir``:

- ``predictions.csv``: every input's rows (the columns are :func:`affect.predict.columns.output_columns`);
- ``csv/<input>.csv``: the same, one file per input;
- ``inputs.csv`` and ``summary.json``: one row per input with its status (``ok``, ``no_face``,
  ``not_found``, ``empty``, ``unreadable``, ``truncated``, ``too_small``), frames, faces, frames
  without a face, and the counts;
- ``plots/<input>_timeline.png`` per video and ``plots/contact_sheet.png`` for the images
  (:mod:`affect.predict.plots`); ``videos/<input>_annotated.mp4`` with ``annotate_video``;

and prints a one-line summary (inputs, frames, faces, frames without a face, bad inputs by name,
output paths). It writes in the ``teardown`` hook, so a run with no face to predict on (Lightning then
skips the prediction loop) still writes its rows and summary. With several processes
(``--trainer.devices N --trainer.strategy ddp``; each has whole inputs, see
:func:`affect.predict.datamodule.shard_inputs`) every process sends its rows, reports and
contact-sheet crops to rank 0 (:func:`gather_to_rank_zero`), which merges them in input order
(:func:`merge_parts`) and writes the same files as one process.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from affect.labels import EXPR_CLASSES
from affect.predict.columns import au_columns, compound_columns, output_columns

__all__ = ["MediaPredictionWriter", "collect_predictions", "predictions_frame", "summary_line"]


class MediaPredictionWriter(BasePredictionWriter):
    """Writes per-face CSVs, plots and (optionally) annotated videos (see the module docstring).

    Args:
        output_dir: where to write (``None``: ``<trainer.default_root_dir>/predictions``).
        plots: write the timeline / contact-sheet PNGs.
        annotate_video: write an annotated MP4 per video input (boxes, top expression, a VA dot).
        contact_sheet_max: faces shown on the image contact sheet.
    """

    def __init__(
        self,
        output_dir: str | None = None,
        plots: bool = True,
        annotate_video: bool = False,
        contact_sheet_max: int = 48,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.plots = plots
        self.annotate_video = annotate_video
        self.contact_sheet_max = contact_sheet_max
        self._parts: dict[str, list[np.ndarray]] = {}
        self.summary: dict | None = None
        self.frame: pd.DataFrame | None = None

    # ------------------------------------------------------------------ collecting
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "predict":
            self.on_predict_start(trainer, pl_module)

    def on_predict_start(self, trainer, pl_module) -> None:
        self._parts = {}
        self.summary = None
        self._start = time.perf_counter()

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        collect_predictions(self._parts, prediction, batch)

    # ------------------------------------------------------------------ writing
    def teardown(self, trainer, pl_module, stage: str) -> None:
        """Write at the very end of ``predict`` — also when there was no face to run the model on (then
        Lightning skips the prediction loop and its ``on_predict_end``). With several processes each
        sends its rows to rank 0 (:func:`gather_to_rank_zero`), which writes everything."""
        if stage != "predict":
            return
        dm = trainer.datamodule
        table = getattr(dm, "table", None)
        if table is None:
            raise TypeError(f"MediaPredictionWriter works with MediaDataModule; got {type(dm).__name__}")
        part = self.local_part(table, dm.spaces, dm.crops)
        part["extract_s"] = getattr(dm, "extract_seconds", float("nan"))
        parts = gather_to_rank_zero(trainer, part)
        if parts is None:  # not rank 0
            return
        frame, reports, crops = merge_parts(parts, getattr(dm, "inputs", None))
        out = Path(self.output_dir or Path(trainer.default_root_dir) / "predictions")
        self.summary = self.write(out, frame, reports, dm.spaces, crops)
        # seconds spent: faces (decode + detect + align + track, in setup; the slowest process) and model + writing
        self.summary["timing"] = {"extract_s": max(p["extract_s"] for p in parts),
                                  "predict_write_s": time.perf_counter() - self._start,
                                  "processes": len(parts)}  # fmt: skip
        (out / "summary.json").write_text(json.dumps(self.summary, indent=1, default=float))
        print(summary_line(self.summary), flush=True)

    def local_part(self, table, spaces: Mapping, crops: np.ndarray | None) -> dict:
        """This process's output rows (:meth:`predictions_frame` plus a ``crop`` column), its input
        reports and the aligned crops the contact sheet may show (the first ``contact_sheet_max``
        image faces; ``crop`` indexes them, -1 elsewhere)."""
        frame = self.predictions_frame(table, spaces)
        crop_of = np.array([r["crop"] for r in table.rows], np.int64)
        shown = np.flatnonzero((frame["kind"] == "image").to_numpy() & (crop_of >= 0))[: self.contact_sheet_max] \
            if len(frame) else np.zeros(0, np.int64)  # fmt: skip
        crop = np.full(len(frame), -1, np.int64)
        crop[shown] = np.arange(len(shown))
        sheet = crops[crop_of[shown]] if crops is not None else np.zeros((0, 1, 1, 3), np.uint8)
        return {"frame": frame.assign(crop=crop), "reports": list(table.reports), "crops": sheet}

    def predictions_frame(self, table, spaces: Mapping) -> pd.DataFrame:
        """The output table: the datamodule's rows with the model's predictions filled in."""
        return predictions_frame(table.rows, spaces, self._parts)

    def write(self, out: Path, frame: pd.DataFrame, reports: list, spaces: Mapping, crops: np.ndarray | None) -> dict:
        """Every output file from the rows (``frame``: :meth:`predictions_frame`'s columns plus ``crop``,
        indexing ``crops`` for the contact sheet) and the input reports, in input order."""
        out.mkdir(parents=True, exist_ok=True)
        self.frame = frame.drop(columns="crop")
        combined = out / "predictions.csv"
        self.frame.to_csv(combined, index=False, float_format="%.6g")
        names = safe_names([r.input for r in reports])
        per_input = out / "csv"
        per_input.mkdir(exist_ok=True)
        outputs: dict[str, list[str]] = {"predictions": [str(combined)], "csv": [], "plots": [], "videos": []}
        groups = dict(tuple(self.frame.groupby("input", sort=False))) if len(self.frame) else {}
        for report in reports:
            rows = groups.get(report.input)
            if rows is None:
                continue
            path = per_input / f"{names[report.input]}.csv"
            rows.to_csv(path, index=False, float_format="%.6g")
            outputs["csv"].append(str(path))
        if self.plots and len(frame):
            outputs["plots"] = self._plots(out / "plots", frame, reports, names, spaces, crops)
        if self.annotate_video:
            from affect.predict.annotate import annotate_video

            for report in reports:
                rows = groups.get(report.input)
                if report.kind == "video" and rows is not None and report.frames:
                    dest = out / "videos" / f"{names[report.input]}_annotated.mp4"
                    outputs["videos"].append(str(annotate_video(report.input, rows, dest)))
        inputs = pd.DataFrame([vars(r) for r in reports])
        inputs.to_csv(out / "inputs.csv", index=False)
        summary = summarise(reports, outputs, out)
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
        return summary

    def _plots(self, folder: Path, frame: pd.DataFrame, reports, names, spaces, crops) -> list[str]:
        from affect.predict.plots import contact_sheet_figure, timeline_figure

        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for report in reports:
            if report.kind == "video" and report.faces:
                fig = timeline_figure(frame[frame["input"] == report.input], spaces, title=report.input)
                path = folder / f"{names[report.input]}_timeline.png"
                fig.savefig(path, dpi=100, bbox_inches="tight")
                written.append(str(path))
        images = frame[(frame["kind"] == "image") & (frame["crop"] >= 0)]
        if len(images) and crops is not None:
            fig = contact_sheet_figure(images.head(self.contact_sheet_max), crops, spaces)
            path = folder / "contact_sheet.png"
            fig.savefig(path, dpi=100, bbox_inches="tight")
            written.append(str(path))
        return written


def collect_predictions(parts: dict[str, list[np.ndarray]], prediction: Mapping, batch: Mapping) -> None:
    """Keep one batch's model outputs (``va``, ``expr``, ``au``, compound ``probs`` / ``scores``) in
    ``parts`` by the batch's ``row`` key (a :class:`~affect.predict.datamodule.MediaDataModule` batch;
    padding -1 dropped), for :func:`predictions_frame`."""
    if "row" not in batch:
        raise KeyError(
            f"MediaPredictionWriter needs the batch's 'row' key (a MediaDataModule batch); batch keys {sorted(batch)}"
        )
    rows = batch["row"].detach().cpu()
    keep = rows >= 0
    parts.setdefault("row", []).append(rows[keep].numpy())
    for key in ("va", "expr", "au", "probs", "scores"):
        value = prediction.get(key) if isinstance(prediction, Mapping) else None
        if isinstance(value, torch.Tensor) and value.shape[: rows.ndim] == rows.shape:
            parts.setdefault(key, []).append(value.detach().float().cpu()[keep].numpy())


def predictions_frame(table_rows: list[dict], spaces: Mapping, collected: Mapping[str, list[np.ndarray]]) -> pd.DataFrame:
    """The output table (``predictions.csv``'s columns): a :class:`~affect.predict.media.FaceTable`'s
    rows with the model's outputs (:func:`collect_predictions`) filled in; NaN / ``""`` without a face."""
    frame = pd.DataFrame(table_rows)
    n = len(frame)
    parts = {k: np.concatenate(v) for k, v in collected.items() if v}
    rows = parts.get("row", np.zeros(0, np.int64)).astype(np.int64)
    cols: dict[str, np.ndarray] = {}
    if "va" in parts:
        for j, name in enumerate(("valence", "arousal")):
            cols[name] = _scatter(n, rows, parts["va"][:, j])
    if "expr" in parts:
        classes = list(spaces.get("expr_classes") or EXPR_CLASSES)
        for j, name in enumerate(classes):
            cols[name] = _scatter(n, rows, parts["expr"][:, j])
        label = np.full(n, "", dtype=object)
        label[rows] = [classes[i] for i in parts["expr"].argmax(1)]
        cols["expression"] = label
    if "au" in parts:
        names = au_columns(spaces.get("au_set") or [])
        if len(names) != parts["au"].shape[1]:
            raise ValueError(f"the model gives {parts['au'].shape[1]} AU probabilities; its au_set names {names}")
        for j, name in enumerate(names):
            cols[name] = _scatter(n, rows, parts["au"][:, j])
    comp = parts.get("probs", parts.get("scores"))
    if comp is not None and comp.ndim == 2:
        names = list(spaces.get("compound_classes") or [f"class_{i}" for i in range(comp.shape[1])])
        for j, name in enumerate(compound_columns(names)):
            cols[name] = _scatter(n, rows, comp[:, j])
        label = np.full(n, "", dtype=object)
        label[rows] = [names[i] for i in comp.argmax(1)]
        cols["compound"] = label
    frame = pd.concat([frame, pd.DataFrame(cols, index=frame.index)], axis=1)
    return frame[[c for c in output_columns(frame.columns)]]


def gather_to_rank_zero(trainer, obj: object) -> list | None:
    """``[obj of rank 0, obj of rank 1, ...]`` on rank 0 and ``None`` on the others (one process:
    ``[obj]``). ``torch.distributed.gather_object`` over the strategy's process group (gloo on CPU,
    NCCL on GPUs): the rows travel between the processes, no shared folder is needed."""
    import torch.distributed as dist

    world = int(getattr(trainer, "world_size", 1))
    if world == 1 or not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list | None = [None] * world if trainer.global_rank == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def merge_parts(parts: list[dict], inputs: list[str] | None = None) -> tuple[pd.DataFrame, list, np.ndarray]:
    """The processes' :meth:`MediaPredictionWriter.local_part` outputs as one: rows and reports in the
    order of ``inputs`` (each input's rows as its process made them), crop indices offset.

    >>> from affect.predict.media import InputReport
    >>> a = {"frame": pd.DataFrame({"input": ["b", "b"], "valence": [0.1, 0.2], "crop": [-1, 0]}),
    ...      "reports": [InputReport("b", "image")], "crops": np.zeros((1, 2, 2, 3), np.uint8)}
    >>> b = {"frame": pd.DataFrame({"input": ["a"], "crop": [0]}), "reports": [InputReport("a", "image")],
    ...      "crops": np.ones((1, 2, 2, 3), np.uint8)}
    >>> frame, reports, crops = merge_parts([a, b], ["a", "b"])
    >>> frame["input"].tolist(), frame["crop"].tolist(), [r.input for r in reports], crops[:, 0, 0, 0].tolist()
    (['a', 'b', 'b'], [1, -1, 0], ['a', 'b'], [0, 1])
    """
    frames, offset = [], 0
    for p in parts:
        f = p["frame"]
        frames.append(f.assign(crop=np.where(f["crop"].to_numpy() >= 0, f["crop"].to_numpy() + offset, -1)))
        offset += len(p["crops"])
    crops = np.concatenate([p["crops"] for p in parts if len(p["crops"])] or [parts[0]["crops"]])
    reports = [r for p in parts for r in p["reports"]]
    full = [f for f in frames if len(f)] or frames[:1]
    frame = pd.concat(full, ignore_index=True) if len(full) > 1 else full[0]
    if len(parts) > 1:
        order = {p: i for i, p in enumerate(inputs or dict.fromkeys(r.input for r in reports))}
        rank = frame["input"].map(order).to_numpy() if len(frame) else np.zeros(0, np.int64)
        frame = frame.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)
        frame = frame[[*output_columns(frame.columns), "crop"]]
        reports.sort(key=lambda r: order[r.input])
    return frame, reports, crops


def _scatter(n: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(n, np.nan, np.float64)
    out[rows] = values
    return out


def safe_names(paths: list[str]) -> dict[str, str]:
    """A file-name-safe, unique name per input: its file name, with as many parent folders as make it
    unique (``/`` -> ``__``).

    >>> safe_names(["/d/a/x.mp4", "/d/b/x.mp4", "/e/y.jpg"])
    {'/d/a/x.mp4': 'a__x.mp4', '/d/b/x.mp4': 'b__x.mp4', '/e/y.jpg': 'y.jpg'}
    """
    parts = {p: Path(os.path.abspath(p)).parts[1:] or (p,) for p in dict.fromkeys(paths)}
    depth = dict.fromkeys(parts, 1)
    while True:
        names = {p: "__".join(parts[p][-depth[p]:]) for p in parts}
        clash = [p for p in parts if list(names.values()).count(names[p]) > 1 and depth[p] < len(parts[p])]
        if not clash:
            return names
        for p in clash:
            depth[p] += 1


def summarise(reports, outputs: Mapping, out: Path) -> dict:
    """Counts over the inputs and the bad inputs by status and name."""
    bad = {}
    for r in reports:
        if r.status != "ok":
            bad.setdefault(r.status, []).append({"input": r.input, "detail": r.detail})
    return {
        "inputs": len(reports),
        "images": sum(r.kind == "image" for r in reports),
        "videos": sum(r.kind == "video" for r in reports),
        "frames": sum(r.frames for r in reports),
        "faces": sum(r.faces for r in reports),
        "frames_without_face": sum(r.frames_without_face for r in reports),
        "status_counts": {s: sum(r.status == s for r in reports) for s in sorted({r.status for r in reports})},
        "bad_inputs": bad,
        "output_dir": str(out),
        "outputs": dict(outputs),
    }


def summary_line(summary: Mapping) -> str:
    """One line: inputs, frames, faces, frames without a face, bad inputs named, outputs.

    >>> summary_line({"inputs": 2, "images": 1, "videos": 1, "frames": 11, "faces": 9, "frames_without_face": 2,
    ...     "bad_inputs": {"empty": [{"input": "a.mp4", "detail": ""}]}, "output_dir": "out"})
    'affect predict: 2 inputs (1 images, 1 videos), 11 frames, 9 faces, 2 frames without a face; empty: a.mp4; wrote out/predictions.csv, out/csv/, out/plots/'
    """
    bad = "".join(
        f"; {status}: {', '.join(Path(b['input']).name for b in items)}"
        for status, items in sorted(summary.get("bad_inputs", {}).items())
    )
    out = summary["output_dir"]
    return (
        f"affect predict: {summary['inputs']} inputs ({summary['images']} images, {summary['videos']} videos), "
        f"{summary['frames']} frames, {summary['faces']} faces, {summary['frames_without_face']} frames without a face"
        f"{bad}; wrote {out}/predictions.csv, {out}/csv/, {out}/plots/"
    )

"""``MediaPredictionWriter``: a Lightning ``BasePredictionWriter`` that turns ``predict_step`` outputs
on a :class:`~affect.predict.datamodule.MediaDataModule` into tables, plots and an annotated video,
**as the run goes**.

The datamodule's :class:`~affect.predict.stream.FaceStream` hands each batch's outputs back by row
(``va`` [N, 2] / [B, T, 2], softmax ``expr`` [N, 7], sigmoid ``au`` [N, A], compound ``probs`` /
``scores``) and, in input order, the rows whose predictions are in (:meth:`write_rows`) and each
finished input (:meth:`finish_input`). Into ``output_dir`` it writes:

- ``csv/<input>.csv``: an input's rows (columns: :func:`affect.predict.columns.output_columns`),
  appended as they come to ``csv/.part-<input>.csv`` and renamed when the input is done — so a run
  that stops keeps every finished input and the rows so far of the one in progress;
- ``plots/<input>_timeline.png`` per video with faces and ``videos/<input>_annotated.mp4`` with
  ``annotate_video``, when the input is done (:mod:`affect.predict.plots`, :mod:`affect.predict.annotate`);
- at the end: ``predictions.csv`` (every input's CSV, in input order), ``plots/contact_sheet.png``
  (the first ``contact_sheet_max`` image faces), ``inputs.csv`` (one row per input: status, detail,
  frames, faces, ``non_finite_faces``) and, last, ``summary.json`` (:mod:`affect.predict.summary`);
  a one-line summary is printed, and a run in which no input is ``ok`` ends in a one-line error.

Every file is written under a temporary name (``.part-<name>``) and renamed. Output names are safe,
bounded and unique (:func:`affect.predict.names.safe_names`); the ``input`` column holds the path as
text (:func:`~affect.predict.names.text_name`). Non-finite outputs (NaN / inf weights) are never
a value or a label: the face's values of that output are empty, it is counted in its input's
``non_finite_faces``, and an input that was ``ok`` gets status ``non_finite``.

A folder that holds an earlier run's outputs (or a ``config.yaml`` LightningCLI would refuse to
overwrite) is refused with one line naming ``--overwrite``; ``overwrite=True`` removes the earlier
outputs first (a clean replacement). With several processes (``--trainer.devices N --trainer.strategy
ddp``; each has whole inputs, :func:`affect.predict.datamodule.shard_inputs`) each process writes its
inputs' files into the (shared) output folder and sends its input reports and contact-sheet faces
to rank 0 (:func:`gather_to_rank_zero`), which writes the files of the end.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from affect.errors import ConfigError
from affect.labels import EXPR_CLASSES
from affect.predict.columns import INTERNAL, META_COLUMNS, au_columns, compound_columns, output_columns
from affect.predict.names import safe_names, text_name
from affect.predict.summary import check_some_ok, summarise, summary_line

__all__ = ["MediaPredictionWriter", "mark_non_finite", "output_layout", "rows_frame", "safe_names", "summary_line"]

#: What a run writes into its output folder (an earlier run's are removed by ``overwrite``).
OUTPUTS = ("predictions.csv", "inputs.csv", "summary.json", "csv", "plots", "videos")
PART = ".part-"


def part_path(dest: Path) -> Path:
    """The temporary name ``dest`` is written under (same folder, same suffix) before it is renamed."""
    return dest.with_name(PART + dest.name)


class MediaPredictionWriter(BasePredictionWriter):
    """Writes per-face CSVs, plots and (optionally) annotated videos (see the module docstring).

    Args:
        output_dir: where to write (``None``: ``<trainer.default_root_dir>/predictions``).
        plots: write the timeline / contact-sheet PNGs.
        annotate_video: write an annotated MP4 per video input (boxes, top expression, a VA dot).
        contact_sheet_max: faces shown on the image contact sheet.
        overwrite: replace the outputs of an earlier run in the same folder (otherwise refused).
    """

    def __init__(
        self,
        output_dir: str | None = None,
        plots: bool = True,
        annotate_video: bool = False,
        contact_sheet_max: int = 48,
        overwrite: bool = False,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.plots = plots
        self.annotate_video = annotate_video
        self.contact_sheet_max = contact_sheet_max
        self.overwrite = overwrite
        self.summary: dict | None = None

    # ------------------------------------------------------------------ start
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "predict":
            return
        dm = trainer.datamodule
        if not hasattr(dm, "sink") or not hasattr(dm, "inputs"):
            raise TypeError(f"MediaPredictionWriter works with MediaDataModule; got {type(dm).__name__}")
        self.out = Path(self.output_dir or Path(trainer.default_root_dir) / "predictions")
        self.prepare_folder(trainer)
        trainer.predict_loop.return_predictions = False  # the rows are written here, not kept
        dm.sink = self
        self.dm = dm
        self.start(dm.inputs, dm.spaces, pl_module)

    def start(self, inputs: list[str], spaces: Mapping, module) -> None:
        """Begin a run over ``inputs`` (all processes' inputs: the output names depend on all)."""
        self.inputs, self.spaces, self.module = list(inputs), dict(spaces), module
        self.names = safe_names(self.inputs)
        self.layout: list[tuple[str, list[str], str | None, list[str]]] | None = None
        self.columns: list[str] | None = None
        self.reports: list = []
        self.files: dict[str, dict[str, list[str]]] = {}
        self.sheet_rows: list[pd.DataFrame] = []
        self.sheet_crops: list[np.ndarray] = []
        self._current: tuple[str, object, int] | None = None  # (input, open part file, non-finite faces)
        self._start = time.perf_counter()
        self.summary = None

    def prepare_folder(self, trainer) -> None:
        """Refuse a folder with an earlier run's outputs unless ``overwrite``; then remove them (only in
        a folder an earlier run marks: its ``summary.json`` or ``.part-`` files) — the one overwrite rule,
        also of the short ``affect predict --overwrite``."""
        from lightning.pytorch.cli import SaveConfigCallback

        savers = [cb for cb in trainer.callbacks if isinstance(cb, SaveConfigCallback)]
        log_dir = trainer.log_dir or trainer.default_root_dir if savers else None
        configs = [Path(log_dir) / cb.config_filename for cb in savers]
        used = [self.out / n for n in OUTPUTS if (self.out / n).exists()]
        if self.out.is_dir():
            used += sorted(self.out.glob(PART + "*"))
        # an earlier run's folder: its summary.json, or a stopped run's .part- files; any other folder
        # (a user's own, e.g. one with a plots/ of theirs) keeps its files under overwrite
        earlier = (self.out / "summary.json").is_file() or any(self.out.glob(PART + "*")) or any(
            (self.out / "csv").glob(PART + "*"))  # fmt: skip
        used += [c for c in configs if c.exists()]
        if used and not self.overwrite:
            names = ", ".join(str(p) for p in used[:3]) + (", ..." if len(used) > 3 else "")
            raise ConfigError(
                f"{text_name(str(self.out))} holds an earlier run's outputs ({text_name(names)}): pass --overwrite "
                "(--trainer.callbacks.init_args.overwrite true) to replace them, or choose another "
                "--trainer.default_root_dir"
            )
        for cb in savers:
            cb.overwrite = True if self.overwrite else cb.overwrite
        trainer.strategy.barrier("affect-predict-check")
        if used and earlier and trainer.is_global_zero:
            for p in used:
                if p in configs:
                    continue  # LightningCLI writes it again (overwrite)
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        trainer.strategy.barrier("affect-predict-clean")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if "row" not in batch:
            raise KeyError(
                f"MediaPredictionWriter needs the batch's 'row' key (a MediaDataModule batch); batch keys {sorted(batch)}"
            )
        self.dm.stream.receive(batch["row"], prediction)

    # ------------------------------------------------------------------ rows, as they come
    def write_rows(self, rows: list[dict], preds: list[dict | None], crops: list[np.ndarray | None]) -> None:
        """Append one input's rows (in order; ``preds``: the model's outputs per row, ``None`` for
        rows it was not run on) to its part file; keep the first image faces for the contact sheet."""
        if self.layout is None:
            self.layout = self.probe_layout()
        frame, bad = self.rows_frame(rows, preds)
        name = rows[0]["input"]
        if self._current is None or self._current[0] != name:
            self._close_current()
            path = part_path(self.out / "csv" / f"{self.names[name]}.csv")
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in finish_input
            frame.iloc[:0].to_csv(handle, index=False)
            self._current = (name, handle, 0)
        _, handle, nonfinite = self._current
        frame.to_csv(handle, header=False, index=False, float_format="%.6g")
        handle.flush()
        self._current = (name, handle, nonfinite + bad)
        for i, crop in enumerate(crops):
            if crop is not None and len(self.sheet_crops) < self.contact_sheet_max:
                self.sheet_rows.append(frame.iloc[[i]])
                self.sheet_crops.append(crop)

    def _close_current(self) -> tuple[str, int] | None:
        if self._current is None:
            return None
        name, handle, nonfinite = self._current
        handle.close()
        dest = self.out / "csv" / f"{self.names[name]}.csv"
        os.replace(part_path(dest), dest)
        self._current = None
        return name, nonfinite

    def finish_input(self, report) -> None:
        """An input is done: its CSV gets its name, its non-finite faces are counted (status
        ``non_finite`` for an input that was ``ok``), its timeline / annotated video are drawn."""
        closed = self._close_current() if self._current and self._current[0] == report.input else None
        mark_non_finite(report, closed[1] if closed else 0)
        files: dict[str, list[str]] = {"csv": [], "plots": [], "videos": []}
        csv = self.out / "csv" / f"{self.names[report.input]}.csv"
        if closed:
            files["csv"].append(str(csv))
            rows = pd.read_csv(csv) if (self.plots and report.faces) or self.annotate_video else None
            if self.plots and report.kind == "video" and report.faces:
                from affect.predict.plots import timeline_figure

                fig = timeline_figure(rows, self.spaces, title=text_name(report.input))
                dest = self.out / "plots" / f"{self.names[report.input]}_timeline.png"
                dest.parent.mkdir(parents=True, exist_ok=True)
                fig.savefig(part_path(dest), dpi=100, bbox_inches="tight", format="png")
                os.replace(part_path(dest), dest)
                files["plots"].append(str(dest))
            if self.annotate_video and report.kind == "video" and report.frames:
                from affect.predict.annotate import annotate_video

                dest = self.out / "videos" / f"{self.names[report.input]}_annotated.mp4"
                annotate_video(report.input, rows, part_path(dest))
                os.replace(part_path(dest), dest)
                files["videos"].append(str(dest))
        self.files[report.input] = files
        self.reports.append(report)

    # ------------------------------------------------------------------ columns
    def probe_layout(self) -> list[tuple[str, list[str], str | None, list[str]]]:
        """The model's output columns (:func:`output_layout`) on the stream's example batch."""
        size = int(self.spaces.get("image_size") or 96)
        return output_layout(self.module, self.spaces, self.dm.stream.example_batch(size, int(self.spaces.get("audio_size") or 0)))

    def rows_frame(self, rows: list[dict], preds: list[dict | None]) -> tuple[pd.DataFrame, int]:
        """Rows in the output columns (:func:`rows_frame`; the columns fixed by the first rows)."""
        frame, bad = rows_frame(rows, preds, self.layout or [], self.columns)
        self.columns = list(frame.columns)
        return frame, bad

    # ------------------------------------------------------------------ end
    def on_predict_end(self, trainer, pl_module) -> None:
        """Every row is predicted: finish the inputs, then (rank 0) the files of the end, summary last."""
        stream = self.dm.stream
        stream.release()
        if stream.ends or stream.rows:
            raise RuntimeError(f"affect predict ended with {len(stream.rows)} rows not written (a bug: please report)")
        part = {"reports": self.reports, "files": self.files, "sheet_rows": self.sheet_rows,
                "sheet_crops": self.sheet_crops, "columns": self.columns, "extract_s": stream.extract_seconds}  # fmt: skip
        parts = gather_to_rank_zero(trainer, part)
        if parts is not None:
            total = time.perf_counter() - self._start
            self.finish(parts, {"extract_s": max(p["extract_s"] for p in parts),
                                "predict_write_s": total - stream.extract_seconds, "processes": len(parts)})  # fmt: skip

    def finish(self, parts: list[dict], timing: dict) -> dict:
        """Rank 0: ``predictions.csv``, the contact sheet, ``inputs.csv``, then ``summary.json``."""
        order = {p: i for i, p in enumerate(self.inputs)}
        reports = sorted((r for p in parts for r in p["reports"]), key=lambda r: order.get(r.input, len(order)))
        files = {k: v for p in parts for k, v in p["files"].items()}
        columns = next((p["columns"] for p in parts if p["columns"]), None) or output_columns(META_COLUMNS)
        self.out.mkdir(parents=True, exist_ok=True)
        combined = self.out / "predictions.csv"
        with open(part_path(combined), "w", encoding="utf-8", newline="") as dst:
            pd.DataFrame(columns=columns).to_csv(dst, index=False)  # the header the per-input CSVs have
            for r in reports:
                for csv in files.get(r.input, {}).get("csv", []):
                    with open(csv, encoding="utf-8") as src:
                        src.readline()
                        shutil.copyfileobj(src, dst)
        os.replace(part_path(combined), combined)
        outputs = {"predictions": [str(combined)], "csv": [], "plots": [], "videos": []}
        for r in reports:
            for k, v in files.get(r.input, {}).items():
                outputs[k].extend(v)
        sheet = self.contact_sheet(parts, order)
        if sheet:
            outputs["plots"].append(sheet)
        inputs = pd.DataFrame([vars(r) for r in reports])
        if len(inputs):
            inputs["input"] = inputs["input"].map(text_name)
        inputs.to_csv(part_path(self.out / "inputs.csv"), index=False)
        os.replace(part_path(self.out / "inputs.csv"), self.out / "inputs.csv")
        self.summary = summarise(reports, outputs, self.out)
        self.summary["timing"] = timing
        dest = self.out / "summary.json"
        part_path(dest).write_text(json.dumps(self.summary, indent=1, default=float))
        os.replace(part_path(dest), dest)
        print(summary_line(self.summary), flush=True)
        check_some_ok(self.summary)
        return self.summary

    def contact_sheet(self, parts: list[dict], order: Mapping[str, int]) -> str | None:
        rows = [(r, c) for p in parts for r, c in zip(p["sheet_rows"], p["sheet_crops"], strict=True)]
        if not self.plots or not rows:
            return None
        from affect.predict.plots import contact_sheet_figure

        order = {text_name(p): i for p, i in order.items()}  # the rows hold the inputs as text
        rows.sort(key=lambda rc: order.get(rc[0]["input"].iloc[0], 0))  # stable: each input's faces in order
        rows = rows[: self.contact_sheet_max]
        frame = pd.concat([r for r, _ in rows], ignore_index=True).assign(crop=np.arange(len(rows)))
        fig = contact_sheet_figure(frame, np.stack([c for _, c in rows]), self.spaces)
        dest = self.out / "plots" / "contact_sheet.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(part_path(dest), dpi=100, bbox_inches="tight", format="png")
        os.replace(part_path(dest), dest)
        return str(dest)


def output_layout(module, spaces: Mapping, example: Mapping) -> list[tuple[str, list[str], str | None, list[str]]]:
    """``(output key, its columns, label column or None, label names)`` of the model's outputs, from
    one ``predict_step`` on ``example`` (a blank batch shaped as the stream's; eval mode, no gradients)."""
    layout: list[tuple[str, list[str], str | None, list[str]]] = []
    if module is None:
        return layout
    was_training = module.training
    module.eval()
    with torch.inference_mode():
        out = module.predict_step({k: v.to(module.device) for k, v in example.items()}, 0)
    module.train(was_training)
    rows = example["row"]
    width = {k: v.shape[-1] for k, v in (out.items() if isinstance(out, Mapping) else ())
             if isinstance(v, torch.Tensor) and v.ndim == rows.ndim + 1 and v.shape[: rows.ndim] == rows.shape}  # fmt: skip
    if "va" in width:
        layout.append(("va", ["valence", "arousal"], None, []))
    if "expr" in width:
        classes = list(spaces.get("expr_classes") or EXPR_CLASSES)
        layout.append(("expr", classes, "expression", classes))
    if "au" in width:
        names = au_columns(spaces.get("au_set") or [])
        if len(names) != width["au"]:
            raise ValueError(f"the model gives {width['au']} AU probabilities; its au_set names {names}")
        layout.append(("au", names, None, []))
    key = "probs" if "probs" in width else "scores" if "scores" in width else None
    if key:
        names = list(spaces.get("compound_classes") or [f"class_{i}" for i in range(width[key])])
        layout.append((key, compound_columns(names), "compound", names))
    return layout


def rows_frame(rows: list[dict], preds: list[dict | None], layout: list, columns: list[str] | None = None,
               ) -> tuple[pd.DataFrame, int]:  # fmt: skip
    """A :class:`~affect.predict.media.FaceTable`'s rows with the model's outputs (``preds``: per row,
    ``None`` where it was not run; ``layout``: :func:`output_layout`) in the output columns (``columns``,
    else :func:`~affect.predict.columns.output_columns` of what is there), and how many faces got a
    non-finite output (their values of that output are NaN, their label empty)."""
    frame = pd.DataFrame(rows).drop(columns=[c for c in INTERNAL if rows and c in rows[0]])
    frame["input"] = [text_name(r["input"]) for r in rows]
    n = len(rows)
    bad = np.zeros(n, bool)
    cols: dict[str, np.ndarray] = {}
    for key, names, label_col, labels in layout:
        values = np.full((n, len(names)), np.nan)
        got = np.zeros(n, bool)
        for i, p in enumerate(preds):
            if p is not None and key in p:
                values[i], got[i] = p[key], True
        finite = np.isfinite(values).all(1)
        bad |= got & ~finite
        values[~finite] = np.nan
        cols.update({c: values[:, j] for j, c in enumerate(names)})
        if label_col:
            ok = got & finite
            label = np.full(n, "", dtype=object)
            label[ok] = [labels[j] for j in values[ok].argmax(1)]
            cols[label_col] = label
    frame = pd.concat([frame, pd.DataFrame(cols, index=frame.index)], axis=1)
    if columns is None:
        columns = output_columns([*META_COLUMNS, *frame.columns])
    return frame.reindex(columns=columns), int(bad.sum())


def mark_non_finite(report, faces: int) -> None:
    """Count an input's ``faces`` with non-finite model outputs in its report (``non_finite_faces``,
    the detail) and give an ``ok`` input status ``non_finite``."""
    report.non_finite_faces = faces
    if faces:
        what = (f"{faces} of {report.faces} faces got non-finite model outputs (NaN / inf); "
                "their predictions are empty")  # fmt: skip
        report.detail = f"{report.detail}; {what}" if report.detail else what
        if report.status == "ok":
            report.status = "non_finite"


def gather_to_rank_zero(trainer, obj: object) -> list | None:
    """``[obj of rank 0, obj of rank 1, ...]`` on rank 0 and ``None`` on the others (one process:
    ``[obj]``). ``torch.distributed.gather_object`` over the strategy's process group (gloo on CPU,
    NCCL on GPUs)."""
    import torch.distributed as dist

    world = int(getattr(trainer, "world_size", 1))
    if world == 1 or not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list | None = [None] * world if trainer.global_rank == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered

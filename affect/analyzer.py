"""The Python API of ``affect predict``, in-process: :class:`Analyzer` and :func:`plot_timeline`.

For notebooks and live loops: the model and the face detector are loaded once, and each call
returns a ``pandas.DataFrame`` with the rows and columns of ``predictions.csv``
(:mod:`affect.predict.columns`). The pieces are the command's own: faces by
:class:`~affect.predict.media.FaceExtractor` (MTCNN, 5-point alignment, IoU tracks), batches by
:class:`~affect.predict.datamodule.MediaDataModule`, the model's ``predict_step``, the table by
:func:`~affect.predict.writer.rows_frame`, the figure by
:func:`~affect.predict.plots.timeline_figure`; nothing is written to disk.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from affect.errors import CheckpointError, ConfigError

__all__ = ["Analyzer", "load_checkpoint", "plot_timeline"]


class Analyzer:
    """A trained model plus the face pipeline of ``affect predict``, for use from Python.

    Args:
        checkpoint: a ``.ckpt`` that ``affect fit`` wrote (opened with ``weights_only=True``; its
            ``"affect"`` entry gives the crop size and label spaces); ``None``: the package's default
            model (:mod:`affect.models.default`).
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``:
            where the detector and the model run.
        select: faces kept per frame: ``"all"``, ``"largest"`` or ``"central"``.
        model: an already-built LightningModule (e.g. trained in the notebook) instead of a checkpoint.
        model_class: the LightningModule class of a checkpoint that does not name one (``affect fit``'s
            checkpoints do); classes named by a checkpoint are imported only from the ``affect`` package.
        progress: a progress bar over frames in :meth:`predict`.
        options: the other options of ``affect predict``'s data section (``frame_stride``,
            ``detect_every``, ``min_face_size``, ``min_face_fraction``, ``detect_max_side``,
            ``refine_passes``, ``detect_batch_size``, ``batch_size``, ``sequence_length``,
            ``iou_threshold``, ``max_gap``, ``missing_audio``, ``audio_context_s``; see
            :class:`~affect.predict.MediaDataModule`).

    After each call, :attr:`last_inputs` holds one row per input (``inputs.csv``'s columns: status,
    frames, faces, ...); :meth:`predict` also names the inputs that are not ``ok`` in a warning.

    A tiny untrained model on three drawn faces (a real use passes a checkpoint, or nothing):

    >>> import numpy as np
    >>> from affect.data.synthetic import face_sequence
    >>> from affect.models.facebehaviornet import FaceBehaviorNetModule
    >>> net = FaceBehaviorNetModule(backbone="test_resnet", hidden=16, image_size=32)
    >>> analyzer = Analyzer(model=net, device="cpu")
    >>> frames, _, _ = face_sequence(np.random.default_rng(0), 3, size=96)
    >>> df = analyzer.predict_frames(frames, times=[0.0, 0.04, 0.08])
    >>> df["frame"].tolist(), df["time_s"].tolist(), df["face_detected"].tolist(), df["face_id"].tolist()
    ([0, 1, 2], [0.0, 0.04, 0.08], [1, 1, 1], [0, 0, 0])
    >>> from affect.labels import EXPR_CLASSES     # 7 probabilities per face, and the top one
    >>> df[list(EXPR_CLASSES)].sum(axis=1).round(4).tolist(), bool(df["expression"].isin(EXPR_CLASSES).all())
    ([1.0, 1.0, 1.0], True)
    >>> fig = plot_timeline(df)            # valence / arousal, EXPR and AU panels
    >>> len(fig.axes) >= 3
    True
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str | torch.device = "auto",
        select: str = "all",
        *,
        model: torch.nn.Module | None = None,
        model_class: type | None = None,
        progress: bool = False,
        **options,
    ) -> None:
        from affect.predict.datamodule import model_spaces

        self.device = resolve_device(device)
        self.progress = progress
        self.options = {"select": select, **options}
        for bad in ("inputs", "device", "progress", "image_size", "num_workers"):
            if bad in self.options:
                raise ConfigError(f"Analyzer: {bad!r} is not an option here (inputs go to predict(); "
                                  "device and progress are arguments; the crop size is the model's)")  # fmt: skip
        self._datamodule(None)  # checks the options now (unknown name: TypeError; bad value: ValueError)
        if model is not None and checkpoint is not None:
            raise ConfigError("Analyzer: pass a checkpoint or a model, not both")
        #: where the model came from: the checkpoint's path, "the default model" or "a module"
        self.source = str(checkpoint) if checkpoint is not None else "the default model" if model is None else "a module"
        if model is not None:
            entry = {}
        elif checkpoint is not None:
            model, entry = load_checkpoint(checkpoint, model_class)
        else:
            model, entry = _default_model(self.device)
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.model = model.to(self.device).eval()
        #: the model's label spaces: the checkpoint's "affect" entry first, then the module's own
        self.spaces: dict = {**model_spaces(None, self.model), **entry}
        self.last_inputs: pd.DataFrame | None = None
        self._detector = None
        self._stream = None  # predict_frames' stream: its tracks, name and next frame index
        self._name, self._next_frame = None, 0

    def __repr__(self) -> str:
        return (f"Analyzer({type(self.model).__name__} from {self.source}, device={self.device}, "
                f"tasks={list(self.spaces.get('tasks') or [])}, image_size={self.spaces.get('image_size')})")  # fmt: skip

    # ------------------------------------------------------------------ public
    def predict(self, inputs: str | Path | Sequence[str | Path]) -> pd.DataFrame:
        """Files, folders (recursive) and globs, images and videos mixed -> ``predictions.csv``'s rows.

        An input that cannot be used (missing, empty, unreadable, too small, without a face, ...) has its
        status in :attr:`last_inputs` and is named in a warning; an argument that names no image or video
        at all raises :class:`~affect.errors.MissingInputError`.
        """
        items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        dm = self._datamodule([str(i) for i in items])
        dm.configure(self.model, self.spaces)
        return self._finish(dm, lambda sink: dm.face_stream(sink, self.detector))

    def predict_frames(
        self,
        frames: np.ndarray | Iterable[np.ndarray],
        times: Sequence[float] | None = None,
        *,
        name: str = "frames",
        keep_tracks: bool = False,
    ) -> pd.DataFrame:
        """RGB uint8 frames already in memory (``[H, W, 3]`` each; one frame, a ``[N, H, W, 3]`` array, a
        list or an iterator) -> rows as for a video: ``kind = "video"``, ``input = name``, ``frame`` the
        frame's index in the stream, ``time_s`` from ``times`` (seconds, one per frame; NaN without).

        ``keep_tracks=False``: the frames are a clip of their own (frame 0 first, new face tracks).
        ``keep_tracks=True`` continues the previous call's stream of the same ``name``: frame indices, face
        tracks (``face_id``) and the ``detect_every`` phase go on, so a webcam loop may pass one frame per
        call (:meth:`reset` starts a new stream).
        Sequence models see windows of the tracks within each call's frames; A/V models need the
        audio of a file (use :meth:`predict`). OpenCV gives BGR: pass ``frame[..., ::-1]``.
        """
        from affect.predict.media import FaceExtractor, FaceTable, InputReport, VideoTracks

        dm = self._datamodule(None)
        image_size = dm.configure(self.model, self.spaces)
        if dm.audio_size:
            raise ConfigError(f"predict_frames: {type(self.model).__name__} reads the audio of a video, which "
                              "frames in memory do not have; use predict() on the video file")  # fmt: skip
        extractor = FaceExtractor(self.detector, dm.options(image_size))
        if not keep_tracks or self._stream is None or self._name != name:
            self._stream, self._name, self._next_frame = VideoTracks.start(extractor.opts), name, 0
        table, report = FaceTable(), InputReport(name, "video")
        pending: list[tuple[int, float, np.ndarray]] = []
        for rgb, t in _frames_and_times(frames, times):
            k = self._next_frame
            self._next_frame += 1
            if k % extractor.opts.frame_stride:
                continue
            if pending and (len(pending) >= extractor.opts.batch_size or pending[0][2].shape != rgb.shape):
                extractor.add_video_frames(name, pending, table, report, self._stream)
                pending = []
            report.height, report.width = rgb.shape[:2]
            report.frames += 1
            pending.append((k, t, rgb))
        extractor.add_video_frames(name, pending, table, report, self._stream)
        if report.status == "ok" and report.faces == 0:
            report.status = "no_face" if report.frames else "empty"
        dm.local_inputs = [name]
        source = _Pieces(table, report)  # one piece: the stream batches it as it does a file's
        return self._finish(dm, lambda sink: dm.face_stream(sink, source=source), warn=False)  # no_face: a live loop's normal state

    def reset(self) -> None:
        """Forget the frame stream of ``predict_frames(..., keep_tracks=True)``."""
        self._stream = None

    @property
    def detector(self):
        """The MTCNN (:class:`affect.face.FaceDetector`), made on first use and kept."""
        if self._detector is None:
            from affect.face import FaceDetector

            dm = self._datamodule(None)
            self._detector = FaceDetector(device=str(self.device), min_face_size=dm.min_face_size,
                                          batch_size=dm.detect_batch_size, refine=dm.refine_passes)  # fmt: skip
        return self._detector

    # ------------------------------------------------------------------ internals
    def _datamodule(self, inputs: list[str] | None):
        from affect.predict.datamodule import MediaDataModule

        return MediaDataModule(inputs, device=str(self.device), progress=self.progress, **self.options)

    def _finish(self, dm, make_stream, warn: bool = True) -> pd.DataFrame:
        """The model on the face stream's batches (``make_stream(sink)``: the datamodule's
        :class:`~affect.predict.stream.FaceStream`) -> the output table (the writer's
        :func:`~affect.predict.writer.rows_frame`); the inputs' reports kept and (``warn``) the bad
        ones named in a warning."""
        from lightning.fabric.utilities.apply_func import move_data_to_device

        from affect.predict.writer import output_layout, rows_frame

        sink = _Rows()
        stream = make_stream(sink)
        size = int(dm.spaces["image_size"])
        sink.layout = output_layout(self.model, dm.spaces, stream.example_batch(size, dm.audio_size))
        with torch.inference_mode():
            for i, batch in enumerate(stream):
                rows = batch["row"]
                stream.receive(rows, self.model.predict_step(move_data_to_device(batch, self.device), i))
        stream.release()
        frame = pd.concat(sink.frames, ignore_index=True) if sink.frames else rows_frame([], [], sink.layout)[0]
        self.last_inputs = pd.DataFrame([vars(r) for r in sink.reports])
        bad = [f"{Path(r.input).name}: {r.status}" for r in sink.reports if r.status != "ok"]
        if bad and warn:
            warnings.warn(f"affect: {len(bad)} of {len(sink.reports)} inputs not ok ({'; '.join(bad)}); "
                          "see Analyzer.last_inputs", stacklevel=3)  # fmt: skip
        return frame


class _Rows:
    """The face stream's sink in memory: each input's rows in the output columns, its report marked
    for non-finite outputs as :class:`~affect.predict.writer.MediaPredictionWriter` does."""

    def __init__(self) -> None:
        self.layout: list = []
        self.frames: list[pd.DataFrame] = []
        self.reports: list = []
        self.columns: list[str] | None = None
        self._bad = 0

    def write_rows(self, rows: list[dict], preds: list, crops: list) -> None:
        from affect.predict.writer import rows_frame

        frame, bad = rows_frame(rows, preds, self.layout, self.columns)
        self.columns, self._bad = list(frame.columns), self._bad + bad
        self.frames.append(frame)

    def finish_input(self, report) -> None:
        from affect.predict.writer import mark_non_finite

        mark_non_finite(report, self._bad)
        self._bad = 0
        self.reports.append(report)


class _Pieces:
    """Frames already made into rows (:meth:`Analyzer.predict_frames`) as a face source of the stream."""

    def __init__(self, table, report) -> None:
        self.table, self.report = table, report

    def stream(self, inputs, progress=None):
        yield self.table, self.report


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; otherwise the device named (checked).

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"Analyzer: device {device!r} is not a torch device ('auto', 'cpu', 'cuda', 'cuda:1')") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"Analyzer: device {device!r} asked for, but CUDA is not available; use device='cpu'")
    return dev


def load_checkpoint(path: str | Path, model_class: type | None = None) -> tuple[torch.nn.Module, dict]:
    """A Lightning checkpoint -> ``(module in eval mode on the CPU, its "affect" entry)``.

    The file is opened with ``torch.load(weights_only=True)`` (it cannot run code); the module's class is
    ``model_class``, else the one the checkpoint names (``hyper_parameters._class_path``, written by
    ``affect fit``), imported only from the ``affect`` package.
    """
    from affect.errors import check_checkpoint_file
    from affect.models.compat import needs_upgrade, old_checkpoint_message
    from affect.models.weights import read_weights

    file = check_checkpoint_file(path)
    ckpt = read_weights(file, key="checkpoint")
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise CheckpointError(f"checkpoint {str(file)!r} is not a Lightning checkpoint (no state_dict); pass the "
                              ".ckpt file that affect fit wrote")  # fmt: skip
    hparams = ckpt.get("hyper_parameters") or {}
    if needs_upgrade(hparams):
        raise CheckpointError(old_checkpoint_message(file))
    cls = model_class or _named_class(hparams.get("_class_path"), file)
    if "_instantiator" in hparams:  # affect fit (LightningCLI): nested class_path arguments built as in the CLI
        module = cls.load_from_checkpoint(file, map_location="cpu", weights_only=True)
    else:  # saved by a plain Trainer: the hyper-parameters are the class's arguments
        module = cls(**{k: v for k, v in hparams.items() if not k.startswith("_")})
        module.on_load_checkpoint(dict(ckpt))
        module.load_state_dict(ckpt["state_dict"])
    return module.eval(), dict(ckpt.get("affect") or {})


def _named_class(class_path: object, file: Path) -> type:
    """The LightningModule class a checkpoint names, from the ``affect`` package only."""
    import lightning as L

    if not isinstance(class_path, str) or not class_path:
        raise CheckpointError(f"checkpoint {str(file)!r} names no model class (hyper_parameters._class_path); "
                              "pass model_class=<its LightningModule class>")  # fmt: skip
    module_name, _, name = class_path.rpartition(".")
    if module_name != "affect" and not module_name.startswith("affect."):
        raise CheckpointError(f"checkpoint {str(file)!r} names the class {class_path!r}, outside the affect package; "
                              "if you trust it, import it and pass model_class=<the class>")  # fmt: skip
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {str(file)!r} names the class {class_path!r}, which this affect does not "
                              f"have ({e}); use the affect version that wrote it") from None  # fmt: skip
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise CheckpointError(f"checkpoint {str(file)!r} names {class_path!r}, which is not a LightningModule")
    return cls


def _default_model(device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The package's default model (:func:`affect.models.default.load_default_model`)."""
    try:
        from affect.models.default import load_default_model
    except ImportError as e:
        if e.name != "affect.models.default":
            raise
        raise ConfigError("Analyzer: this affect has no default model (affect.models.default is missing); pass "
                          "checkpoint=<a .ckpt that affect fit wrote>") from None  # fmt: skip
    return load_default_model(str(device))


def _frames_and_times(frames, times: Sequence[float] | None) -> Iterator[tuple[np.ndarray, float]]:
    """``(RGB uint8 [H, W, 3], time s)`` per frame, each checked; ``times``: one per frame or ``None``."""
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            frames = frames[None]
        elif frames.ndim != 4:
            raise ConfigError(f"predict_frames: frames of shape {frames.shape}; expected one RGB frame [H, W, 3] "
                              "or [N, H, W, 3]")  # fmt: skip
    elif not isinstance(frames, Iterable):
        raise ConfigError(f"predict_frames: frames must be RGB arrays (one, a list or an iterator); got "
                          f"{type(frames).__name__}")  # fmt: skip
    given = None if times is None else [float(t) for t in times]
    n = 0
    for n, rgb in enumerate(frames, start=1):
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            what = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise ConfigError(f"predict_frames: frame {n - 1} is a {what}; expected RGB uint8 [H, W, 3] (grey: "
                              "np.stack([g] * 3, -1); float in [0, 1]: (x * 255).round().astype(np.uint8))")  # fmt: skip
        if given is not None and n > len(given):
            raise ConfigError(f"predict_frames: {len(given)} times for more frames; give one time per frame")
        yield np.ascontiguousarray(rgb), given[n - 1] if given is not None else math.nan  # e.g. bgr[..., ::-1]
    if given is not None and n != len(given):
        raise ConfigError(f"predict_frames: {len(given)} times for {n} frames; give one time per frame")


def plot_timeline(df: pd.DataFrame, input: str | Path | None = None, *, path: str | Path | None = None,
                  title: str | None = None):  # fmt: skip
    """The timeline figure of ``affect predict`` (valence / arousal per face track, stacked EXPR
    probabilities and an AU heat map of the main track) of one video's rows of ``df``
    (:meth:`Analyzer.predict` / :meth:`Analyzer.predict_frames`, or a ``predictions.csv`` read back).

    ``input``: which input's rows (needed when ``df`` holds several videos); ``path``: also save it
    there (PNG, PDF, SVG by the suffix). Returns the matplotlib ``Figure``.
    """
    from affect.predict.plots import timeline_figure

    if input is None:
        videos = list(dict.fromkeys(df.loc[df["kind"] == "video", "input"]))
        if len(videos) != 1:
            raise ConfigError(f"plot_timeline: the rows hold {len(videos)} videos ({', '.join(map(str, videos[:5]))}); "
                              "pass input=<one of them>")  # fmt: skip
        input = videos[0]
    rows = df[df["input"] == str(input)]
    if rows.empty:
        raise ConfigError(f"plot_timeline: no rows of input {str(input)!r}; the rows' inputs are "
                          f"{sorted(map(str, set(df['input'])))[:5]}")  # fmt: skip
    aus = [int(c[2:]) for c in rows.columns if c.startswith("AU") and c[2:].isdigit()]
    fig = timeline_figure(rows, {"au_set": aus}, title=str(input) if title is None else title)
    if path is not None:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig

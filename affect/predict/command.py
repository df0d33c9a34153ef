"""The short ``affect predict`` command: ``affect predict INPUT... [-o OUT] [--ckpt CKPT] [--overwrite]``.

It is the LightningCLI ``predict`` with the shipped ``predict/media`` config
(:func:`affect.predict.run_predict`), spelled briefly: without ``--ckpt`` the default model that ships
with the package (:mod:`affect.models.default`) analyses the inputs; when none is installed it is a
one-line error (never an untrained network). The files land directly in ``OUT`` (default
``affect_out/<first input's name>``): ``predictions.csv``, ``csv/``, ``inputs.csv``, ``summary.json``,
``plots/``, ``config.yaml``. A folder that already holds files is refused unless ``--overwrite``,
which first removes the files of an earlier ``affect predict`` there (only those it writes, and only
in a folder that its ``summary.json`` marks as one).

Options not listed in ``--help`` that spell LightningCLI keys (``--data.init_args.min_face_size 40``,
``--trainer.precision bf16-mixed``, ``--model.init_args.test_time_flip true``) are passed through.

:func:`is_short_form` tells the two forms apart: the short one starts with an input (not an option)
or with one of its own options; ``affect predict --config ... --ckpt_path ...`` is LightningCLI's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from affect.errors import ConfigError, check_checkpoint_file

__all__ = ["build_parser", "is_short_form", "lightning_args", "main", "output_folder", "split_pass_through"]

#: Option prefixes handed to LightningCLI unchanged.
PASS_THROUGH = ("--data.", "--trainer.", "--model.", "--seed_everything")
#: What an earlier ``affect predict`` wrote into its output folder (removed by ``--overwrite``).
OUTPUTS = ("predictions.csv", "inputs.csv", "summary.json", "config.yaml", "csv", "plots", "videos")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="affect predict",
        description="Analyse photos and videos: per-face valence-arousal, expressions and action units "
        "(those the model was trained on), CSVs and plots. The LightningCLI form: affect predict --config "
        "predict/media --ckpt_path CKPT --data.init_args.inputs ... (affect predict --help).",
        epilog="Further LightningCLI keys pass through: --data.init_args.<key> V, --trainer.<key> V, "
        "--model.init_args.<key> V.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders (recursive), globs")
    p.add_argument("-o", "--out", help="output folder (default: affect_out/<name of the first input>)")
    p.add_argument("--ckpt", help="a checkpoint written by `affect fit` (default: the model that ships with affect)")
    p.add_argument("--overwrite", action="store_true", help="write into an output folder that already holds files")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument("--select", choices=("all", "largest", "central"), help="faces per frame (default: all)")
    p.add_argument("--frame-stride", type=int, help="keep every k-th video frame")
    p.add_argument("--detect-every", type=int, help="detect faces every k-th kept frame, track in between")
    p.add_argument("--annotate-video", action="store_true", help="also write an annotated MP4 per video")
    p.add_argument("--no-plots", action="store_true", help="skip the timeline / contact-sheet PNGs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def is_short_form(args: Sequence[str]) -> bool:
    """Whether ``affect predict <args>`` is the short command (see the module docstring)."""
    if not args:
        return False
    first = args[0].split("=", 1)[0]
    if not first.startswith("-"):
        return True
    own = {s for a in build_parser()._actions for s in a.option_strings} - {"-h", "--help"}
    return first in own


def output_folder(out: str | None, inputs: Sequence[str]) -> Path:
    """``out``, else ``affect_out/<name of the first input>`` (its file stem or folder name)."""
    if out:
        return Path(out)
    first = Path(inputs[0].rstrip("/\\"))
    name = first.stem if first.suffix else first.name
    return Path("affect_out") / (name.replace("*", "").strip(".") or "inputs")


def device_args(device: str) -> list[str]:
    """``--trainer.accelerator`` / ``--trainer.devices`` for ``--device``."""
    device = device.strip().lower()
    if device == "auto":
        return []
    kind, _, index = device.partition(":")
    accelerator = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "mps": "mps"}.get(kind)
    if accelerator is None or (index and not index.isdigit()):
        raise ConfigError(f"--device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    return ["--trainer.accelerator", accelerator, "--trainer.devices", f"[{index}]" if index else "1"]


def lightning_args(ns: argparse.Namespace, out: Path, passed: Sequence[str]) -> list[str]:
    """The LightningCLI overrides for the short command's options (after ``predict/media``)."""
    args = ["--trainer.callbacks.init_args.output_dir", str(out), *device_args(ns.device)]
    for key, value in (("select", ns.select), ("frame_stride", ns.frame_stride), ("detect_every", ns.detect_every)):
        if value is not None:
            args += [f"--data.init_args.{key}", str(value)]
    if ns.annotate_video:
        args += ["--trainer.callbacks.init_args.annotate_video", "true"]
    if ns.no_plots:
        args += ["--trainer.callbacks.init_args.plots", "false"]
    if ns.no_progress:
        args += ["--data.init_args.progress", "false", "--trainer.enable_progress_bar", "false"]
    return [*args, *passed]


def split_pass_through(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(own options and inputs, LightningCLI keys with their values)``: a key is ``--data.x=V`` or
    ``--data.x V`` (the next word, unless it is an option; ``-1`` is a value).

    >>> split_pass_through(["a.png", "--data.init_args.min_face_size", "40", "b.mp4", "--trainer.devices", "-1", "-o", "x"])
    (['a.png', 'b.mp4', '-o', 'x'], ['--data.init_args.min_face_size', '40', '--trainer.devices', '-1'])
    """
    own, rest = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith(PASS_THROUGH):
            nxt = args[i + 1] if i + 1 < len(args) else None
            takes_value = "=" not in a and nxt is not None and not nxt.startswith("--") and nxt not in ("-o", "-h")
            rest += args[i : i + 1 + takes_value]
            i += 1 + takes_value
        else:
            own.append(a)
            i += 1
    return own, rest


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse a folder that holds files unless ``overwrite``; with it, remove the outputs of an earlier
    ``affect predict`` (:data:`OUTPUTS`, only when its ``summary.json`` marks the folder as one)."""
    if os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP worker: the launching process checked
        return
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a folder; name a folder")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not overwrite:
        raise ConfigError(f"-o {out}: the folder already holds files; pass --overwrite to replace an earlier "
                          "affect predict there, or name another folder with -o")  # fmt: skip
    if not (out / "summary.json").is_file():
        return
    for name in OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    from affect.predict import run_predict

    own, rest = split_pass_through(list(sys.argv[2:] if argv is None else argv))
    ns = build_parser().parse_args(own)
    if ns.ckpt is not None:
        check_checkpoint_file(ns.ckpt, what="--ckpt")
    out = output_folder(ns.out, ns.inputs)
    if ns.ckpt is None:  # fail before any output folder is made
        from affect.models.default import read_manifest

        read_manifest()
    prepare_output(out, ns.overwrite)
    summary = run_predict(ns.ckpt, ns.inputs, out, lightning_args(ns, out, rest), overwrite=ns.overwrite)
    return 0 if summary is not None else 1

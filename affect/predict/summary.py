"""The end of an ``affect predict`` run: ``summary.json``'s counts, the one-line summary, and the
one-line error of a run in which no input could be analysed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from affect.errors import InputFileError
from affect.predict.names import text_name

__all__ = ["check_some_ok", "summarise", "summary_line"]


def summarise(reports, outputs: Mapping, out: Path) -> dict:
    """Counts over the inputs, every status counted and the inputs of each status other than ``ok``
    named (as text: :func:`~affect.predict.names.text_name`)."""
    bad: dict[str, list] = {}
    for r in reports:
        if r.status != "ok":
            bad.setdefault(r.status, []).append({"input": text_name(r.input), "detail": r.detail})
    return {
        "inputs": len(reports),
        "images": sum(r.kind == "image" for r in reports),
        "videos": sum(r.kind == "video" for r in reports),
        "frames": sum(r.frames for r in reports),
        "faces": sum(r.faces for r in reports),
        "frames_without_face": sum(r.frames_without_face for r in reports),
        "non_finite_faces": sum(getattr(r, "non_finite_faces", 0) for r in reports),
        "status_counts": {s: sum(r.status == s for r in reports) for s in sorted({r.status for r in reports})},
        "bad_inputs": bad,
        "output_dir": text_name(str(out)),
        "outputs": {k: [text_name(str(p)) for p in v] for k, v in outputs.items()},
    }


def summary_line(summary: Mapping) -> str:
    """One line: inputs, frames, faces, frames without a face, bad inputs named, outputs.

    >>> summary_line({"inputs": 2, "images": 1, "videos": 1, "frames": 11, "faces": 9, "frames_without_face": 2,
    ...     "bad_inputs": {"empty": [{"input": "a.mp4", "detail": ""}]}, "output_dir": "out"})
    'affect predict: 2 inputs (1 images, 1 videos), 11 frames, 9 faces, 2 frames without a face; empty: a.mp4; wrote out/predictions.csv, out/csv/, out/plots/'
    """
    out = summary["output_dir"]
    return (
        f"affect predict: {summary['inputs']} inputs ({summary['images']} images, {summary['videos']} videos), "
        f"{summary['frames']} frames, {summary['faces']} faces, {summary['frames_without_face']} frames without a face"
        f"{_bad(summary)}; wrote {out}/predictions.csv, {out}/csv/, {out}/plots/"
    )


def _bad(summary: Mapping, most: int = 5) -> str:
    parts = []
    for status, items in sorted(summary.get("bad_inputs", {}).items()):
        names = [Path(b["input"]).name for b in items]
        more = f" and {len(names) - most} more" if len(names) > most else ""
        parts.append(f"; {status}: {', '.join(names[:most])}{more}")
    return "".join(parts)


def check_some_ok(summary: Mapping) -> None:
    """Raise a one-line :class:`~affect.errors.InputFileError` when no input ended ``ok``.

    >>> check_some_ok({"status_counts": {"ok": 1}})
    >>> check_some_ok({"status_counts": {"not_found": 1}, "inputs": 1, "output_dir": "out",
    ...                "bad_inputs": {"not_found": [{"input": "/d/a.jpg"}]}})
    Traceback (most recent call last):
    ...
    affect.errors.InputFileError: affect predict: no input could be analysed (of 1 inputs; not_found: a.jpg); every input's status and detail are in out/summary.json and out/inputs.csv: check the paths given to --data.init_args.inputs (not_found, empty, unreadable) or the checkpoint (non_finite)
    """
    if summary["status_counts"].get("ok", 0):
        return
    out = summary["output_dir"]
    raise InputFileError(
        f"affect predict: no input could be analysed (of {summary['inputs']} inputs{_bad(summary)}); every input's "
        f"status and detail are in {out}/summary.json and {out}/inputs.csv: check the paths given to "
        "--data.init_args.inputs (not_found, empty, unreadable) or the checkpoint (non_finite)"
    )

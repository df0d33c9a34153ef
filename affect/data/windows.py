"""The one windowing rule of the sequence datasets (image folders and the prepared store).

A video's frames, in time order, are cut into windows of ``length`` frames starting every ``stride``
frames (default ``length``: no overlap) while a full window fits; one more window, shortened (the
datasets pad it and mark the padding ``frame_mask`` False), covers the frames left over. Every frame is
in a window (with ``stride <= length``; a larger stride samples windows with gaps), and with
``stride == length`` in exactly one, so an evaluation over the windows counts each
frame once (a last window shifted back to end on the last frame would count its overlap twice).
"""

from __future__ import annotations

__all__ = ["window_starts"]


def window_starts(n: int, length: int, stride: int | None = None) -> list[int]:
    """Start positions of the windows over ``n`` ordered frames (see the module docstring).

    >>> window_starts(5, 2), window_starts(2, 5), window_starts(6, 4, 2), window_starts(7, 4, 2), window_starts(0, 3)
    ([0, 2, 4], [0], [0, 2], [0, 2, 4], [])
    """
    if length < 1:
        raise ValueError(f"sequence length must be >= 1, got {length}")
    if stride is not None and stride < 1:
        raise ValueError(f"sequence stride must be >= 1, got {stride}")
    stride = stride or length
    if n <= 0:
        return []
    starts = list(range(0, max(n - length, 0) + 1, stride))
    if starts[-1] + length < n and starts[-1] + stride < n:  # frames left over (not a gap of stride > length)
        starts.append(starts[-1] + stride)
    return starts

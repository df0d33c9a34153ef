"""The one windowing rule (affect.data.windows) against a brute-force reference."""

from __future__ import annotations

import pytest

from affect.data.windows import window_starts


@pytest.mark.parametrize("n", range(0, 23))
@pytest.mark.parametrize("length, stride", [(1, None), (4, None), (5, 2), (3, 5), (7, 3)])
def test_windows_cover_every_frame_and_only_the_last_is_short(n, length, stride):
    starts = window_starts(n, length, stride)
    step = stride or length
    assert starts == sorted(starts) and all(b - a == step for a, b in zip(starts, starts[1:], strict=False))
    covered = [k for s in starts for k in range(s, min(s + length, n))]
    assert all(s < n for s in starts)  # no empty window
    if step <= length:
        assert set(covered) == set(range(n))  # every frame
    if step == length:
        assert len(covered) == n  # exactly once: an evaluation counts each frame once
    assert all(s + length <= n for s in starts[:-1])  # only the last window may be short
    if step <= length and starts:
        assert starts[-1] + length >= n > starts[-1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="length"):
        window_starts(3, 0)
    with pytest.raises(ValueError, match="stride"):
        window_starts(3, 2, 0)

"""File-name suffixes of the media ``affect`` reads: the one list of images and videos.

Lower-case, with the dot; compare with ``Path(p).suffix.lower()``. A file with another suffix
may still be an image Pillow reads (``affect predict`` tries it as one).
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v", ".flv", ".wmv")
#: Numbered frame files of an extracted video folder (``00001.jpg``, ``12.png``).
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def is_image(path: str | Path) -> bool:
    """Whether ``path`` has an image suffix (any case).

    >>> is_image("a/B.JPG"), is_image("clip.mp4")
    (True, False)
    """
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video(path: str | Path) -> bool:
    """Whether ``path`` has a video suffix (any case).

    >>> is_video("clip.MOV"), is_video("a.png")
    (True, False)
    """
    return Path(path).suffix.lower() in VIDEO_SUFFIXES

"""One image reader for every place that reads an image file: prepare, datasets, predict.

:func:`read_image` decodes any file Pillow reads into 8-bit RGB. Plain ``convert("RGB")`` is right
for 8-bit modes (grey, palette, RGBA — alpha dropped, CMYK, ...) but destroys high-bit-depth
greyscale: a 16-bit image (mode ``I;16``) is clipped, so almost every pixel becomes white.
:func:`to_rgb8` scales those modes instead:

- ``I;16`` / ``I;16B`` / ``I;16L`` / ``I;16N`` (16-bit PNG / TIFF): ``v * 255 / 65535``, rounded;
- ``I`` (32-bit integers): 8-bit data (all values in 0..255) is kept, 16-bit data (0..65535) is
  scaled as above, any other range is stretched from its minimum to its maximum;
- ``F`` (32-bit floats): values in [0, 1] are scaled by 255, values in [0, 255] kept, any other
  range stretched from minimum to maximum; NaN becomes 0.

Import path for other packages (e.g. ``affect.predict``): ``from affect.data.images import read_image``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affect.errors import AffectError

HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageReadError(AffectError, RuntimeError):
    """An image file that is missing or cannot be decoded (the message names the file)."""


def _scale_to_u8(a: np.ndarray, full_scale: float | None) -> np.ndarray:
    """``a / full_scale * 255`` (``full_scale=None``: stretch min..max) as rounded uint8."""
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if full_scale is None:
        lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
        a, full_scale = a - lo, (hi - lo) or 1.0
    return np.clip(np.rint(a * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def to_rgb8(image):
    """A Pillow image of any mode -> 8-bit ``RGB`` Pillow image (high bit depths scaled, see module doc).

    >>> from PIL import Image
    >>> im = Image.fromarray(np.array([[0, 32768, 65535]], np.uint16))
    >>> im.mode, np.asarray(to_rgb8(im))[0, :, 0].tolist()
    ('I;16', [0, 128, 255])
    >>> np.asarray(im.convert("RGB"))[0, :, 0].tolist()   # what plain convert does
    [0, 255, 255]
    """
    from PIL import Image

    mode = image.mode
    if mode not in HIGH_BIT_DEPTH_MODES:
        return image if mode == "RGB" else image.convert("RGB")
    a = np.asarray(image)
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    if mode.startswith("I;16"):
        full = 65535.0
    elif mode == "I":
        full = 255.0 if lo >= 0 and hi <= 255 else 65535.0 if lo >= 0 and hi <= 65535 else None
    else:  # "F"
        full = 1.0 if lo >= 0 and hi <= 1 else 255.0 if lo >= 0 and hi <= 255 else None
    grey = _scale_to_u8(a, full)
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), "RGB")


def open_rgb8(path: str | Path):
    """Decode an image file to an 8-bit RGB Pillow image.

    Raises:
        ImageReadError: the file is missing ("image not found: ...") or cannot be decoded
            ("corrupt or unreadable image: ...").
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb8(img)
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"corrupt or unreadable image: {path} ({err})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 ``[H, W, 3]`` (see :func:`to_rgb8`); errors as :func:`open_rgb8`."""
    return np.asarray(open_rgb8(path))

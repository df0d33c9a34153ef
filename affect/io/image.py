"""The one image reader: any file Pillow reads -> 8-bit RGB, as a person sees it, with bounded memory.

:func:`decode_image` (and its shorthands :func:`read_image`, :func:`open_image`) does, in order:

1. **open** the header only (no pixels yet). Pillow's own decompression-bomb check is replaced by
   ours (step 2), without touching its process-wide ``Image.MAX_IMAGE_PIXELS``: a file Pillow
   refuses at open is opened again by the same format plugin, minus the check.
2. **reduced decode** when ``max_side`` is given and the long side exceeds ``4 * max_side``: a
   JPEG is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (Pillow ``draft``; the long side
   stays >= ``2 * max_side``), so the full-size array is never allocated. No other format Pillow
   reads can decode at a reduced scale, so those are decoded at full size and then reduced
   (integer box filter) to a long side in ``[2, 4) x max_side``.
3. **pixel cap**: if the pixels still to be decoded exceed ``max_pixels`` (default
   :data:`MAX_IMAGE_PIXELS`, 100 Mpx ~ 300 MB as RGB), the file is refused *before* decoding with
   :class:`~affect.io.errors.MediaReadError` status ``too_large`` naming the size, the cap and the
   option (``max_image_pixels``) -- e.g. an 18000 x 18000 PNG of a few KB.
4. **orientation**: the EXIF ``Orientation`` tag (all 8 values: mirrors, rotations, transpose,
   transverse) is applied (``ImageOps.exif_transpose``), as every photo viewer does; phones store
   portrait photos as landscape pixels plus this tag. The mapping is ``ImageOps.exif_transpose``'s.
5. **mode -> 8-bit RGB** (:func:`to_rgb8`). Plain ``convert("RGB")`` is right for 8-bit modes
   (grey, palette, RGBA -- alpha dropped, CMYK, ...) but destroys high-bit-depth greyscale: a
   16-bit image (mode ``I;16``) is clipped, so almost every pixel becomes white. Those are scaled:

   - ``I;16`` / ``I;16B`` / ``I;16L`` / ``I;16N`` (16-bit PNG / TIFF): ``v * 255 / 65535``, rounded;
   - ``I`` (32-bit integers): 8-bit data (all values in 0..255) is kept, 16-bit data (0..65535) is
     scaled as above, any other range is stretched from its minimum to its maximum;
   - ``F`` (32-bit floats): values in [0, 1] are scaled by 255, values in [0, 255] kept, any other
     range stretched from minimum to maximum; NaN becomes 0.

Errors are :class:`~affect.io.errors.MediaReadError` with status ``not_found``, ``unreadable``
("corrupt or unreadable image: ...") or ``too_large``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affect.io.errors import MediaReadError

HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
#: Default cap on the pixels of one decoded image (after any reduced decode): 100 Mpx.
MAX_IMAGE_PIXELS = 100_000_000
#: Pillow formats libjpeg decodes at 1/2, 1/4, 1/8 scale (MPO: the multi-picture JPEG many phones write).
JPEG_FORMATS = ("JPEG", "MPO")
#: EXIF orientations whose display swaps width and height.
_SWAPS_SIDES = (5, 6, 7, 8)


@dataclass(frozen=True)
class DecodedImage:
    """``rgb`` uint8 ``[H, W, 3]`` as displayed; ``source_size`` ``(width, height)`` of the full image
    as displayed (after orientation); ``factor``: source pixels = decoded pixels x ``factor``
    (1.0 unless reduced); ``detail``: a sentence naming a reduced decode, else ""."""

    rgb: np.ndarray
    source_size: tuple[int, int]
    factor: float = 1.0
    detail: str = ""


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


def _open_header(path: str):
    """``Image.open`` (header only), with Pillow's bomb check replaced by the caller's pixel cap:
    a file it refuses is opened by the first format plugin that accepts it, minus the check."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError:
            pass
    with open(path, "rb") as f:
        prefix = f.read(16)
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        ok = accept is None or accept(prefix)
        if not ok or isinstance(ok, str):
            continue
        try:
            return factory(path)  # an ImageFile given a path opens and owns the file
        except (SyntaxError, IndexError, TypeError, ValueError):
            continue
    raise UnidentifiedImageError(f"cannot identify image file {path!r}")


def _too_large(path, w: int, h: int, max_pixels: int, reducible: bool) -> MediaReadError:
    how = "" if reducible else " (only JPEG decodes at a reduced scale)"
    return MediaReadError(
        f"image {str(path)!r} is {w}x{h} = {w * h / 1e6:.0f} Mpx, above the {max_pixels / 1e6:g} Mpx cap{how}; "
        "downscale the file or raise max_image_pixels",
        status="too_large",
    )


def decode_image(path: str | Path, max_side: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> DecodedImage:
    """Decode ``path`` (see the module docstring); ``max_side=None``: full resolution or refuse."""
    from PIL import UnidentifiedImageError

    path = str(path)
    if not Path(path).exists():
        raise MediaReadError(f"image not found: {path}", status="not_found")
    try:
        with _open_header(path) as im:
            w, h = im.size
            jpeg = im.format in JPEG_FORMATS
            if max_side and max(w, h) > 4 * max_side and jpeg:
                im.draft("RGB", (w * 2 * max_side // max(w, h), h * 2 * max_side // max(w, h)))
            dw, dh = im.size
            how = "decoded at reduced scale" if (dw, dh) != (w, h) else "reduced after decoding"
            if dw * dh > max_pixels:
                raise _too_large(path, w, h, max_pixels, jpeg and bool(max_side))
            im.load()
            orientation = im.getexif().get(0x0112, 1)  # after load: a PNG may carry eXIf after the pixels
            out = im
            if max_side and max(dw, dh) > 4 * max_side:
                out = to_rgb8(out) if out.mode not in ("L", "RGB", "I", "F") else out  # modes reduce() takes
                out = out.reduce(max(dw, dh) // (2 * max_side))
            out = _orient(out, orientation)
            rgb = np.asarray(to_rgb8(out))
    except MediaReadError:
        raise
    except FileNotFoundError:
        raise MediaReadError(f"image not found: {path}", status="not_found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise MediaReadError(f"corrupt or unreadable image: {path} ({err})") from None
    sw, sh = (h, w) if orientation in _SWAPS_SIDES else (w, h)
    factor = sw / rgb.shape[1]
    detail = f"{how} to {rgb.shape[1]}x{rgb.shape[0]} from {sw}x{sh}" if factor != 1.0 else ""
    return DecodedImage(rgb=rgb, source_size=(sw, sh), factor=factor, detail=detail)


def _orient(image, orientation: int):
    """Apply EXIF ``orientation`` (1..8; other values: unchanged): the table of
    ``PIL.ImageOps.exif_transpose``, applied to an image that may no longer carry the tag."""
    from PIL import Image

    t = Image.Transpose
    method = {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE,
              6: t.ROTATE_270, 7: t.TRANSVERSE, 8: t.ROTATE_90}.get(orientation)  # fmt: skip
    return image if method is None else image.transpose(method)


def read_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of ``path`` at full resolution, as displayed (see the module docstring)."""
    return decode_image(path, None, max_pixels).rgb


def open_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS):
    """:func:`read_image` as an 8-bit RGB Pillow image (for torchvision-style transforms)."""
    from PIL import Image

    return Image.fromarray(read_image(path, max_pixels), "RGB")

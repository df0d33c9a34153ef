"""Images read as a person sees them (EXIF orientation) and with bounded memory (reduced decode, pixel cap)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affect.io import MAX_IMAGE_PIXELS, MediaReadError, decode_image, read_image

REPO = Path(__file__).resolve().parents[2]

#: EXIF orientation -> stored pixels to displayed pixels, written out from the EXIF 2.3 table (not Pillow).
DISPLAYED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored horizontally
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored vertically
    5: lambda a: a.transpose(1, 0, 2),  # mirrored horizontally, then rotated 270 clockwise
    6: lambda a: np.rot90(a, -1),  # rotated 90 clockwise (a phone held upright)
    7: lambda a: np.rot90(a[:, ::-1], -1),  # mirrored horizontally, then rotated 90 clockwise
    8: lambda a: np.rot90(a, 1),  # rotated 90 counter-clockwise
}


def _with_orientation(path: Path, stored: np.ndarray, orientation: int, **save) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif, **save)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(tmp_path, orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (4, 6, 3), dtype=np.uint8)  # W != H
    png = _with_orientation(tmp_path / "o.png", stored, orientation)
    with Image.open(png) as im:
        assert im.getexif()[0x0112] == orientation  # the tag really is in the file
    np.testing.assert_array_equal(read_image(png), DISPLAYED[orientation](stored))
    # JPEG (where cameras write the tag): 8x8 blocks of flat colour survive the lossy coding
    blocks = np.kron(stored, np.ones((16, 16, 1), np.uint8))
    jpg = _with_orientation(tmp_path / "o.jpg", blocks, orientation, quality=95, subsampling=0)
    got = read_image(jpg).astype(int)
    err = {k: np.abs(got - f(blocks)).mean() for k, f in DISPLAYED.items() if f(blocks).shape == got.shape}
    assert min(err, key=err.get) == orientation and err[orientation] < 3, err


def test_reduced_jpeg_decode_keeps_the_orientation_and_source_size(tmp_path):
    stored = np.zeros((1000, 4000, 3), np.uint8)
    stored[:, :500] = 255  # the left eighth is white
    jpg = _with_orientation(tmp_path / "wide.jpg", stored, 6, quality=90)  # displayed: 1000 wide, 4000 tall
    d = decode_image(jpg, max_side=200)
    assert d.source_size == (1000, 4000)
    assert d.rgb.shape == (500, 125, 3) and d.factor == 8.0  # libjpeg's 1/8 scale, never the full array
    assert d.detail == "decoded at reduced scale to 125x500 from 1000x4000"
    # rotated 90 clockwise: the stored left edge is now the top
    assert d.rgb[:60].mean() > 240 and d.rgb[70:].mean() < 15


def test_phone_mpo_jpeg_is_decoded_reduced_too(tmp_path):
    """Many phones write MPO (a JPEG with extra pictures), which Pillow reports as its own format."""
    im = Image.new("RGB", (4000, 1000), (200, 10, 10))
    im.save(tmp_path / "p.jpg", format="MPO", save_all=True, append_images=[im.resize((400, 100))])
    with Image.open(tmp_path / "p.jpg") as check:
        assert check.format == "MPO"
    d = decode_image(tmp_path / "p.jpg", max_side=200)
    assert d.rgb.shape == (125, 500, 3) and d.detail.startswith("decoded at reduced scale")


def _flat_png(path: Path, width: int, height: int, value: int = 128) -> Path:
    """An 8-bit grey PNG of one value, written chunk by chunk (zlib), never held in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp, row, parts = zlib.compressobj(9), b"\x00" + bytes([value]) * width, []
    for _ in range(height):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


def test_non_jpeg_is_reduced_after_decode_and_refused_above_the_cap(tmp_path):
    png = _flat_png(tmp_path / "big.png", 3000, 2000, value=77)
    d = decode_image(png, max_side=300)
    assert d.rgb.shape == (400, 600, 3) and d.factor == 5.0 and np.all(d.rgb == 77)  # 3000 // 600 = 5
    assert d.detail == "reduced after decoding to 600x400 from 3000x2000"
    assert read_image(png).shape == (2000, 3000, 3)  # without max_side: full resolution (under the cap)
    with pytest.raises(MediaReadError, match=r"3000x2000 = 6 Mpx, above the 5 Mpx cap.*max_image_pixels") as err:
        decode_image(png, max_side=300, max_pixels=5_000_000)
    assert err.value.status == "too_large"


def test_pillows_global_pixel_limit_is_never_changed(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    read_image(_flat_png(tmp_path / "p.png", 64, 64))
    assert Image.MAX_IMAGE_PIXELS == before


MEASURE = r"""
import json, resource, sys
import pandas as pd
from affect.store.reader import open_store
from affect.face import FaceDetector
from affect.io import MediaReadError, decode_image
from affect.predict.media import FaceExtractor, FaceOptions
from affect.store.writer import PrepareOptions, prepare_store

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

detector = FaceDetector("cpu")
out = {"baseline_mb": peak_mb()}  # torch and MTCNN loaded, no image yet
try:
    decode_image(sys.argv[1], max_side=1920)
except MediaReadError as e:
    out["io"] = [e.status, str(e)]
df = pd.DataFrame({"path": ["huge.png"], "corpus": ["toy"], "split": ["train"], "expr": [1]})
prepare_store(df, sys.argv[2], sys.argv[2] + "/store", options=PrepareOptions(detect="never"), progress=False)
out["prepare"] = str(open_store(sys.argv[2] + "/store").manifest.loc[0, "status"])
rep = FaceExtractor(detector, FaceOptions()).run([sys.argv[1]]).reports[0]
out["predict"] = [rep.status, rep.detail]
out["peak_mb"] = peak_mb()
print(json.dumps(out))
"""


def test_huge_png_is_refused_by_prepare_and_predict_with_bounded_memory(tmp_path):
    """A ~300 KB 18000 x 18000 PNG (324 Mpx: 324 MB as grey, 972 MB as RGB) is a counted status in the
    reader, ``affect prepare`` and ``affect predict``; reading it raises the peak RSS by far less than
    one full-size grey plane."""
    huge = _flat_png(tmp_path / "huge.png", 18000, 18000)
    assert huge.stat().st_size < 1_000_000
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", MEASURE, str(huge), str(tmp_path)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    cap = f"{MAX_IMAGE_PIXELS / 1e6:g} Mpx cap"
    assert out["io"][0] == "too_large" and "18000x18000" in out["io"][1] and cap in out["io"][1]
    assert out["prepare"] == "corrupt"
    assert out["predict"][0] == "too_large" and "max_image_pixels" in out["predict"][1]
    print(f"peak RSS {out['baseline_mb']:.0f} MB with the detector loaded, {out['peak_mb']:.0f} MB after the image")
    assert out["peak_mb"] - out["baseline_mb"] < 100, out


def test_huge_jpeg_beyond_pillows_bomb_limit_is_decoded_reduced(tmp_path):
    """14000 x 14000 (196 Mpx) is above Pillow's DecompressionBombError limit: opened anyway (no global
    change) and decoded by libjpeg at 1/2 scale (the smallest keeping the long side >= 2 x max_side)."""
    jpg = tmp_path / "huge.jpg"
    Image.new("L", (14000, 14000), 200).save(jpg, quality=50)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(jpg)
    d = decode_image(jpg, max_side=1920)
    assert d.rgb.shape == (7000, 7000, 3) and d.factor == 2.0 and abs(int(d.rgb.mean()) - 200) <= 1
    with pytest.raises(MediaReadError, match="196 Mpx") as err:
        read_image(jpg)  # full resolution asked for: above the cap
    assert err.value.status == "too_large"

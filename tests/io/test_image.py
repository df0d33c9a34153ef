"""The one image reader (``affect.io.image``): every mode, high bit depths scaled (not clipped) wherever an image
is read, EXIF orientation, reduced decoding and the pixel cap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect.data.datasets import FrameDataset
from affect.data.manifest import validate_manifest
from affect.face.pipeline import load_image
from affect.io import MediaReadError, read_image
from affect.store.reader import open_store
from affect.store.writer import PrepareOptions, prepare_store

SIZE = 32


def gradient16() -> np.ndarray:
    """A 16-bit ramp over the full range, rows equal (so a resize keeps the ramp)."""
    return np.tile(np.linspace(0, 65535, SIZE).round().astype(np.uint16), (SIZE, 1))


def expected8(a16: np.ndarray) -> np.ndarray:
    """Independent reference: 16 -> 8 bits is v / 257 (65535 / 255), rounded to nearest."""
    return np.repeat(np.floor(a16.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)[:, :, None], 3, axis=2)


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16bit_grey_is_scaled_to_8bit(tmp_path, fmt):
    a = gradient16()
    p = tmp_path / f"g.{fmt}"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode.startswith("I;16")
    out = read_image(p)
    assert out.dtype == np.uint8 and out.shape == (SIZE, SIZE, 3)
    np.testing.assert_array_equal(out, expected8(a))
    assert np.array_equal(load_image(p), out)  # the prepare path reads the same pixels


def test_int32_and_float_modes(tmp_path):
    a = gradient16()
    Image.fromarray(a.astype(np.int32)).save(tmp_path / "i.tiff")  # mode I, 16-bit data
    assert Image.open(tmp_path / "i.tiff").mode == "I"
    np.testing.assert_array_equal(read_image(tmp_path / "i.tiff"), expected8(a))
    eight = np.tile(np.arange(SIZE, dtype=np.int32) * 8, (SIZE, 1))  # mode I holding 8-bit data: kept
    Image.fromarray(eight).save(tmp_path / "i8.tiff")
    assert np.array_equal(read_image(tmp_path / "i8.tiff")[:, :, 0], eight.astype(np.uint8))
    f = np.tile(np.linspace(0, 1, SIZE, dtype=np.float32), (SIZE, 1))  # mode F in [0, 1]
    Image.fromarray(f).save(tmp_path / "f.tiff")
    assert Image.open(tmp_path / "f.tiff").mode == "F"
    np.testing.assert_array_equal(read_image(tmp_path / "f.tiff")[:, :, 0], np.floor(f * 255 + 0.5).astype(np.uint8))


def test_8bit_modes_unchanged_and_errors_name_the_file(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), rgb)
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_image(tmp_path / "l.png"), np.repeat(rgb[:, :, :1], 3, axis=2))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(MediaReadError, match="corrupt or unreadable image: .*bad.png") as err:
        read_image(tmp_path / "bad.png")
    assert err.value.status == "unreadable"
    with pytest.raises(MediaReadError, match="image not found: .*gone.png") as err:
        load_image(tmp_path / "gone.png")
    assert err.value.status == "not_found"


def test_16bit_through_dataset_and_prepare(tmp_path):
    a = gradient16()
    Image.fromarray(a).save(tmp_path / "g.png")
    df = pd.DataFrame({"path": ["g.png"], "corpus": ["toy"], "split": ["train"], "expr": [1]})
    want = expected8(a).transpose(2, 0, 1)
    ds = FrameDataset(validate_manifest(df.copy()), tmp_path, image_size=SIZE)
    np.testing.assert_array_equal(ds[0]["image"].numpy(), want)
    prepare_store(df, tmp_path, tmp_path / "st", options=PrepareOptions(detect="never", image_size=SIZE),
                  progress=False)
    st = open_store(tmp_path / "st")
    assert st.manifest.loc[0, "status"] == "ok"
    np.testing.assert_allclose(st.images[0].astype(int), want.astype(int), atol=1)  # resize_crop is a no-op +-1

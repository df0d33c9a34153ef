"""Alignment, template and input handling of affect.face (no detector; fast)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affect.face import (
    Face,
    align_face,
    apply_transform,
    crop_only,
    five_from_68,
    frontal_template,
    load_image,
    resize_crop,
    select_faces,
    similarity_transform,
    to_rgb,
)
from affect.face.pipeline import CorruptInputError


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Independent reference: closed-form least-squares similarity (Umeyama 1991)."""
    ms, md = src.mean(0), dst.mean(0)
    sc, dc = src - ms, dst - md
    U, S, Vt = np.linalg.svd(dc.T @ sc / len(src))
    D = np.eye(2)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[1, 1] = -1
    R = U @ D @ Vt
    c = (S * np.diag(D)).sum() / ((sc**2).sum() / len(src))
    return np.hstack([c * R, (md - c * R @ ms)[:, None]])


def random_similarity(rng: np.random.Generator) -> np.ndarray:
    a, s = rng.uniform(-0.6, 0.6), rng.uniform(0.3, 3.0)
    return np.array([[s * np.cos(a), -s * np.sin(a), rng.uniform(-50, 200)],
                     [s * np.sin(a), s * np.cos(a), rng.uniform(-50, 200)]])


def test_template_shape_and_symmetry():
    t = frontal_template(96)
    assert t.shape == (5, 2)
    # eyes and mouth corners are left/right symmetric about the centre within 0.3 px (ArcFace template)
    assert abs((t[0, 0] + t[1, 0]) / 2 - 48) < 0.3 and abs((t[3, 0] + t[4, 0]) / 2 - 48) < 0.3
    assert t[0, 1] < t[2, 1] < t[3, 1]  # eyes above nose above mouth
    np.testing.assert_allclose(frontal_template(192), 2 * t)
    with pytest.raises(ValueError, match="size must be positive"):
        frontal_template(0)


def test_similarity_matches_umeyama_reference():
    rng = np.random.default_rng(0)
    tpl = frontal_template(96)
    for _ in range(20):
        src = tpl * rng.uniform(0.5, 4) + rng.uniform(-100, 300, size=2) + rng.normal(0, 3, (5, 2))
        np.testing.assert_allclose(similarity_transform(src, tpl), umeyama(src, tpl), atol=1e-3)


def test_similarity_exact_inverse():
    rng = np.random.default_rng(1)
    tpl = frontal_template(96)
    M = random_similarity(rng)
    src = apply_transform(M, tpl)  # tpl -> src, so the fit must be M^-1
    fit = similarity_transform(src, tpl)
    np.testing.assert_allclose(apply_transform(fit, src), tpl, atol=1e-6)


def test_similarity_rejects_bad_points():
    with pytest.raises(ValueError, match="NaN"):
        similarity_transform(np.full((5, 2), np.nan), frontal_template(96))
    with pytest.raises(ValueError, match="matching point sets"):
        similarity_transform(np.zeros((4, 2)), frontal_template(96))


def test_five_from_68_reference_and_errors():
    rng = np.random.default_rng(2)
    lm = rng.uniform(0, 100, (68, 2))
    five = five_from_68(lm)
    np.testing.assert_allclose(five[0], lm[36:42].mean(0))
    np.testing.assert_allclose(five[1], lm[42:48].mean(0))
    np.testing.assert_allclose(five[2:], lm[[30, 48, 54]])
    assert five_from_68(np.stack([lm, lm])).shape == (2, 5, 2)
    with pytest.raises(ValueError, match="68 landmarks"):
        five_from_68(np.zeros((5, 2)))


def test_align_puts_marked_points_on_template():
    """Draw dots at a rotated/scaled copy of the template, align, and find the dots on the template."""
    tpl = frontal_template(96)
    M = np.array([[2.2 * np.cos(0.3), -2.2 * np.sin(0.3), 120], [2.2 * np.sin(0.3), 2.2 * np.cos(0.3), 60]])
    pts = apply_transform(M, tpl)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    img = np.zeros((480, 400, 3), np.uint8)
    for (x, y), c in zip(pts, colours, strict=True):
        cv2.circle(img, (int(round(x)), int(round(y))), 4, c, -1)
    crop, _, _ = align_face(img, pts, size=96)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    for k, ((tx, ty), c) in enumerate(zip(tpl, colours, strict=True)):
        ys, xs = np.nonzero(np.abs(crop.astype(int) - c).sum(axis=2) < 60)
        assert len(xs) > 0, f"dot {k} missing from the crop"
        assert abs(xs.mean() - tx) < 1.0 and abs(ys.mean() - ty) < 1.0


def test_landmarks_carried_through_transform():
    rng = np.random.default_rng(4)
    lm = rng.uniform(50, 300, (68, 2)).astype(np.float32)
    img = rng.integers(0, 255, (360, 360), dtype=np.uint8)  # grey input works too
    crop, M, lm_c = align_face(img, landmarks68=lm, size=96)
    assert crop.shape == (96, 96, 3)
    np.testing.assert_allclose(lm_c, lm.astype(np.float64) @ M[:, :2].T + M[:, 2], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(M, umeyama(five_from_68(lm), frontal_template(96)), atol=1e-3)
    with pytest.raises(ValueError, match="needs points5 or landmarks68"):
        align_face(img)


def test_to_rgb_modes_and_errors():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_rgb(grey).shape == (3, 4, 3) and (to_rgb(grey)[..., 2] == grey).all()
    assert to_rgb(grey[..., None]).shape == (3, 4, 3)
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 3] = 7
    assert to_rgb(rgba).shape == (3, 4, 3) and to_rgb(rgba).max() == 0
    with pytest.raises(ValueError, match="uint8"):
        to_rgb(grey.astype(np.float32))
    with pytest.raises(ValueError, match=r"got shape \(3, 4, 2\)"):
        to_rgb(np.zeros((3, 4, 2), np.uint8))


def test_resize_crop_and_crop_only():
    img = np.full((48, 48), 200, np.uint8)
    out = resize_crop(img, 96)
    assert out.shape == (96, 96, 3) and (out == 200).all()
    f = crop_only(img)
    assert np.isnan(f.score) and np.isnan(f.points5).all() and f.crop.shape == (96, 96, 3)


def test_select_faces_modes():
    def face(x0, y0, s):
        return Face(np.array([x0, y0, x0 + s, y0 + s], np.float32), 0.99, np.zeros((5, 2), np.float32))

    faces = [face(0, 0, 50), face(80, 80, 40), face(150, 150, 20)]
    assert select_faces(faces, "largest", (200, 200))[0] is faces[0]
    assert select_faces(faces, "central", (200, 200))[0] is faces[1]
    assert len(select_faces(faces, "all", (200, 200))) == 3
    assert select_faces([], "largest", (200, 200)) == []
    with pytest.raises(ValueError, match="face selection must be one of"):
        select_faces(faces, "biggest", (200, 200))


def test_load_image_modes_and_corrupt(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((10, 12), 9, np.uint8), "L").save(tmp_path / "g.png")
    Image.fromarray(np.full((10, 12, 4), 9, np.uint8), "RGBA").save(tmp_path / "a.png")
    for name in ("g.png", "a.png"):
        im = load_image(tmp_path / name)
        assert im.shape == (10, 12, 3) and im.dtype == np.uint8 and (im == 9).all()
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CorruptInputError, match="bad.jpg"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(CorruptInputError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")

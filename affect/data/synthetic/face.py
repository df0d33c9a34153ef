"""Procedural face drawing: 68 iBUG landmarks whose geometry follows the AU intensities.

The face is built in a canonical unit square (x right, y down, the face centred near
(0.5, 0.5)), deformed by the action units, posed (yaw / roll / scale / translation), and
rendered with anti-aliased OpenCV primitives at ``size`` pixels. Every drawn feature is
derived from the same points that are returned as landmarks, so the landmarks are exact.

AU effects (intensity ``I`` in [0, 1]; see ``_landmarks``):

============  ======================================================================
AU1           inner brow ends (21, 22) rise; central forehead wrinkles
AU2           outer brow ends (17, 26) rise; lateral forehead wrinkles
AU4           brows lower and knit towards the midline; vertical glabella lines
AU5           upper lids rise (37, 38, 43, 44): wider eyes, more white above the iris
AU6           lower lids rise (eyes narrow), cheek crease under the eyes, crow's feet
AU7           lids tighten: lower lids rise strongly, upper lids lower a little
AU9           nose wings rise, wrinkles across the nose bridge, deeper nasolabial folds
AU10          upper lip rises (51, 62), nose wings rise a little, nasolabial folds
AU12          lip corners (48, 54) rise and widen; nasolabial folds deepen
AU14          lip corners pull in; dimples beside the corners
AU15          lip corners (48, 54) drop
AU17          chin (7-9) and lower lip rise; a chin crease under the lower lip
AU20          lips stretch sideways (mouth widens), lips thin a little
AU23          lips tighten: narrower mouth, thinner and paler lips, perioral lines
AU24          lips press: thin, closed lips with a darker line
AU25          lips part (62-66 gap), teeth show
AU26          jaw drops: chin and lower lip move down, large opening
============  ======================================================================

VA enters the drawing directly, but weakly compared with the AUs (``sample_labels`` couples
them mostly through which AUs are active and how strongly): valence bends the lip corners
(+0.018 units of face height up at valence +1), arousal opens the eyes (upper lid +/- 20 %),
lifts the brows a little and scales every AU's displacement by ``0.85 + 0.15 * arousal``.

Nuisance factors drawn from ``rng`` (class :class:`Appearance`, :class:`Pose`): skin tone, hair
colour / style / baldness, iris colour, background colours and blobs, an illumination
gradient, Gaussian pixel noise, and head pose (yaw +/- 0.3 rad, roll +/- 0.15 rad, scale
0.88-1.05, translation +/- 4 % of the image).

:mod:`~affect.data.synthetic.geometry` computes the landmarks, :mod:`~affect.data.synthetic.appearance`
holds the nuisance factors; this module renders them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from affect.data.synthetic.appearance import Appearance, Pose, _mix, _transform
from affect.data.synthetic.geometry import _DEPTH, _curve, _landmarks
from affect.labels import AU_SET

__all__ = ["Appearance", "Pose", "draw_face"]

_SHIFT = 4  # cv2 sub-pixel bits
_SCALE = float(1 << _SHIFT)
_AA = cv2.LINE_AA
_U4, _U5, _U7 = np.linspace(-1, 1, 4), np.linspace(-1, 1, 5), np.linspace(-1, 1, 7)
_TOP_T = np.linspace(-0.2, -np.pi - 0.2, 15)[1:-1]
_TOP_COS, _TOP_SIN = np.cos(_TOP_T), np.sin(_TOP_T)


def _poly(img: np.ndarray, pts: np.ndarray, color: tuple) -> None:
    cv2.fillPoly(img, [np.round(pts * _SCALE).astype(np.int32)], color, _AA, _SHIFT)


def _line(img: np.ndarray, pts: np.ndarray, color: tuple, thickness: int, closed: bool = False) -> None:
    cv2.polylines(img, [np.round(pts * _SCALE).astype(np.int32)], closed, color, max(1, thickness), _AA, _SHIFT)


def _ramp(angle: float, size: int) -> np.ndarray:
    """Linear gradient in [-1, 1] along direction ``angle``, ``[size, size]`` float32."""
    r = _RAMP8 if size == 8 else np.linspace(-1, 1, size, dtype=np.float32)
    return math.cos(angle) * r[None, :] + math.sin(angle) * r[:, None]


_RAMP8 = np.linspace(-1, 1, 8, dtype=np.float32)


def _background(app: Appearance, size: int) -> np.ndarray:
    proj = _ramp(app.bg_angle, 8) * 0.5 + 0.5  # a linear gradient is exact under bilinear upsampling
    c0, c1 = np.array(app.bg[0], np.float32), np.array(app.bg[1], np.float32)
    small = (c0 + (c1 - c0) * proj[..., None]).astype(np.uint8)
    img = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    for x, y, r, *col in app.blobs:
        cv2.circle(img, (int(x * size * _SCALE), int(y * size * _SCALE)), int(r * size * _SCALE), col, -1, _AA, _SHIFT)
    return img


def draw_face(
    au: np.ndarray,
    rng: np.random.Generator,
    size: int = 96,
    valence: float = 0.0,
    arousal: float = 0.0,
    *,
    appearance: Appearance | None = None,
    pose: Pose | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face: RGB uint8 ``[size, size, 3]`` and its 68 landmarks float32 ``[68, 2]`` (pixels).

    ``au``: intensities in [0, 1] over ``labels.AU_SET`` (0 = off). ``appearance`` / ``pose`` are
    drawn from ``rng`` when omitted (pass them to keep an identity fixed along a video).

    >>> img, lm = draw_face(np.zeros(17), np.random.default_rng(0), size=48)
    >>> img.shape, img.dtype, lm.shape
    ((48, 48, 3), dtype('uint8'), (68, 2))
    """
    au = np.asarray(au, np.float32)
    if au.shape != (len(AU_SET),):
        raise ValueError(f"au must have shape ({len(AU_SET)},) over AU_SET {AU_SET}; got {au.shape}")
    if np.any(au < 0) or np.any(au > 1):
        raise ValueError(f"AU intensities must lie in [0, 1]; got min {au.min():.3f}, max {au.max():.3f}")
    app = appearance if appearance is not None else Appearance.sample(rng)
    pose = pose if pose is not None else Pose.sample(rng)
    geo = _landmarks(au, float(valence), float(arousal), app)
    unit, i = geo["pts"], geo["i"]

    affine = pose.affine(size)

    def P(p: np.ndarray, depth: float | np.ndarray = 0.04) -> np.ndarray:  # noqa: N802
        return _transform(np.asarray(p, np.float32).reshape(-1, 2), depth, *affine)

    lm = P(unit, _DEPTH)
    px = max(1, round(size / 48))  # base stroke width
    skin = app.skin
    dark = _mix(skin, (40, 25, 20), 0.55)
    img = _background(app, size)

    # Hair behind the head, neck, face (jaw + forehead arc), fringe.
    if not app.bald:
        cv2.ellipse(
            img, tuple(int(v * _SCALE) for v in P([0.5, 0.43], 0.0)[0]),
            (int(app.hair_volume * size * pose.scale * _SCALE), int(0.41 * size * pose.scale * _SCALE)),
            np.degrees(pose.roll), 0, 360, app.hair, -1, _AA, _SHIFT,
        )
    neck = np.array([[0.38, 0.75], [0.62, 0.75], [0.66, 1.1], [0.34, 1.1]])
    _poly(img, P(neck, 0.0), _mix(skin, (0, 0, 0), 0.25))
    top = np.stack([0.5 + app.face_width * _TOP_COS, 0.47 + 0.38 * _TOP_SIN], 1)
    outline = np.concatenate([lm[0:17], P(top, 0.0)])
    _poly(img, outline, skin)
    if not app.bald:
        sel = top[top[:, 1] < app.hairline]
        fringe = np.concatenate([[[sel[0, 0], app.hairline]], sel, [[sel[-1, 0], app.hairline]]])
        if len(sel) >= 2:
            _poly(img, P(fringe, 0.0), app.hair)

    # Forehead wrinkles (AU1 central, AU2 lateral) and glabella lines (AU4).
    for y in (0.245, 0.28):
        if i[1] > 0.05:
            _line(img, P(_curve(0.42, 0.58, y - 0.006, y, _U5)), _mix(skin, dark, i[1]), px)
        if i[2] > 0.05:
            for x0, x1 in ((0.27, 0.39), (0.61, 0.73)):
                _line(img, P(_curve(x0, x1, y - 0.005, y, _U4)), _mix(skin, dark, i[2]), px)
    if i[4] > 0.05:
        for x in (0.482, 0.518):
            _line(img, P([[x, 0.33], [x, 0.385]]), _mix(skin, dark, i[4]), px)

    # Eyes: sclera, iris, pupil, skin above / below the lids, lid lines.
    for upper, lower, cx, cy, w in geo["eyes"]:
        _poly(img, P(np.concatenate([upper, lower[::-1]])), (235, 232, 225))
        c = P([[cx + pose.gaze * w * 0.5, cy]])[0]
        r = 0.025 * size * pose.scale
        cv2.circle(img, (int(c[0] * _SCALE), int(c[1] * _SCALE)), int(r * _SCALE), app.iris, -1, _AA, _SHIFT)
        cv2.circle(img, (int(c[0] * _SCALE), int(c[1] * _SCALE)), int(0.45 * r * _SCALE), (15, 12, 12), -1, _AA, _SHIFT)
        cover_up = np.concatenate([upper, [[cx + w, cy - 0.06], [cx - w, cy - 0.06]]])
        cover_lo = np.concatenate([lower, [[cx + w, cy + 0.05], [cx - w, cy + 0.05]]])
        _poly(img, P(cover_up), skin)
        _poly(img, P(cover_lo), skin)
        _line(img, P(upper), (35, 25, 22), px + (size >= 64))
        _line(img, P(lower), _mix(skin, dark, 0.7), px)

    # Cheeks (AU6): crease under each eye and crow's feet.
    if i[6] > 0.05:
        col = _mix(skin, dark, 0.9 * i[6])
        for cx, side in ((0.35, -1), (0.65, 1)):
            _line(img, P(_curve(cx - 0.07, cx + 0.07, 0.49 - 0.012 * i[6], 0.475, _U7)), col, px)
            ox = cx + side * 0.082
            for dy in (-0.015, 0.0, 0.015):
                _line(img, P([[ox, 0.43 + dy * 0.5], [ox + side * 0.03, 0.43 + dy * 1.6]]), col, px)

    # Brows.
    brow_col = _mix(app.hair, (20, 15, 12), 0.5)
    _line(img, lm[17:22], brow_col, max(2, round(size / 28)))
    _line(img, lm[22:27], brow_col, max(2, round(size / 28)))

    # Nose: sides, base, nostrils, AU9 bridge wrinkles; nasolabial folds (AU9 / AU10 / AU12).
    nose_col = _mix(skin, dark, 0.6)
    side_col = _mix(skin, dark, 0.25)
    _line(img, np.stack([lm[27], lm[28] + [-0.012 * size, 0], lm[31]]), side_col, 1)
    _line(img, np.stack([lm[27], lm[28] + [0.012 * size, 0], lm[35]]), side_col, 1)
    _line(img, lm[31:36], nose_col, px)
    for k in (32, 34):
        cv2.circle(img, (int(lm[k, 0] * _SCALE), int((lm[k, 1] - 0.008 * size) * _SCALE)),
                   int(0.012 * size * _SCALE), _mix(skin, (30, 20, 20), 0.7), -1, _AA, _SHIFT)
    if i[9] > 0.05:
        for y in (0.47, 0.5, 0.53):
            _line(img, P([[0.47, y], [0.53, y]], 0.08), _mix(skin, dark, i[9]), px)
    fold = 0.08 + 0.8 * max(i[9], i[10], i[12], 0.6 * i[6])
    for k_nose, k_mouth, side in ((31, 48, -1), (35, 54, 1)):
        start = unit[k_nose] + [side * 0.02, -0.01]
        end = unit[k_mouth] + [side * 0.035, 0.025]
        mid = 0.5 * (start + end) + [side * 0.025, 0]
        _line(img, P(np.stack([start, mid, end]), 0.05), _mix(skin, dark, fold), px)

    # Mouth: lips, cavity and teeth when open, lip line, dimples (AU14), chin crease (AU17).
    _poly(img, lm[48:60], _mix(app.lips, skin, 0.45 * i[23]))  # AU23 pales the tightened lips
    gap = float(np.mean(unit[65:68, 1] - unit[61:64][::-1, 1]))
    if gap > 0.004:
        _poly(img, lm[60:68], (45, 15, 20))
        teeth = np.concatenate([unit[60:65], unit[60:65][::-1] + [0, min(0.45 * gap, 0.018)]])
        _poly(img, P(teeth, 0.06), (238, 236, 228))
    lip_line = 0.85 if i[24] > 0.3 else 0.6
    _line(img, lm[60:65], _mix(app.lips, (30, 10, 10), lip_line), px)
    if gap > 0.004:
        _line(img, np.concatenate([lm[64:68], lm[60:61]]), _mix(app.lips, (30, 10, 10), 0.5), px)
    if i[14] > 0.05:
        for k, side in ((48, -1), (54, 1)):
            p = unit[k] + [side * 0.02, 0.0]
            arc = np.stack([p + [0, -0.022], p + [side * 0.009, 0], p + [0, 0.022]])
            _line(img, P(arc), _mix(skin, (25, 15, 15), i[14]), px + 1)
    if i[23] > 0.05:  # tightened lips: perioral lines above and below the mouth
        col = _mix(skin, dark, i[23])
        for x in (-0.04, -0.013, 0.013, 0.04):
            top, bottom = unit[51, 1] - 0.008, unit[57, 1] + 0.008
            _line(img, P([[0.5 + x, top - 0.02], [0.5 + x * 0.9, top]]), col, px)
            _line(img, P([[0.5 + x * 0.9, bottom], [0.5 + x, bottom + 0.015]]), col, px)
    if i[17] > 0.05:
        y = unit[57, 1] + 0.03
        _line(img, P(_curve(0.46, 0.54, y + 0.008, y, _U5)), _mix(skin, dark, i[17]), px)

    # Illumination gradient and sensor noise.
    light = 1 + app.light_gain * _ramp(app.light_angle, size)
    noise = rng.standard_normal((size, size, 3), dtype=np.float32) * app.noise
    out = img.astype(np.float32) * light[..., None] + noise
    return np.clip(out, 0, 255).astype(np.uint8), lm.astype(np.float32)

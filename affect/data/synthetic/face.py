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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from affect.labels import AU_SET

_SHIFT = 4  # cv2 sub-pixel bits
_SCALE = float(1 << _SHIFT)
_AA = cv2.LINE_AA
_I = {au: i for i, au in enumerate(AU_SET)}
_LID_U = np.linspace(-1, 1, 9)
_U4, _U5, _U7 = np.linspace(-1, 1, 4), np.linspace(-1, 1, 5), np.linspace(-1, 1, 7)
_JAW_T = np.linspace(np.pi + 0.2, -0.2, 17)
_JAW_COS, _JAW_SIN = np.cos(_JAW_T), np.sin(_JAW_T)
_JAW_DOWN = np.clip(_JAW_SIN, 0, None)
_BROW_U = np.linspace(0.0, 1.0, 5)
_BROW_ARCH = 0.022 * np.sin(np.pi * (0.25 + 0.65 * _BROW_U))
_TOP_T = np.linspace(-0.2, -np.pi - 0.2, 15)[1:-1]
_TOP_COS, _TOP_SIN = np.cos(_TOP_T), np.sin(_TOP_T)

# Skin tones (RGB) from light to dark; a sample interpolates between two neighbours.
_SKIN = np.array(
    [[242, 210, 190], [226, 185, 155], [198, 150, 115], [160, 110, 80], [115, 78, 55], [82, 56, 40]], np.float32
)
_HAIR = np.array(
    [[25, 20, 18], [60, 40, 25], [110, 75, 40], [190, 150, 90], [150, 60, 30], [150, 150, 150]], np.float32
)
_IRIS = np.array([[60, 40, 25], [90, 60, 30], [60, 100, 140], [80, 110, 70], [40, 30, 25]], np.float32)


@dataclass(frozen=True)
class Appearance:
    """Identity and scene: everything about a face that no label depends on."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    lips: tuple[float, float, float]
    bald: bool
    hairline: float  # y of the hairline in unit coordinates
    hair_volume: float  # horizontal extent of the hair behind the head
    face_width: float  # jaw half-width (unit coordinates)
    bg: tuple[tuple[float, float, float], tuple[float, float, float]]
    bg_angle: float
    blobs: tuple[tuple[float, float, float, float, float, float], ...]  # x, y, r, R, G, B
    light_angle: float
    light_gain: float
    noise: float

    @staticmethod
    def sample(rng: np.random.Generator) -> Appearance:
        t = rng.uniform(0, len(_SKIN) - 1)
        k = min(int(t), len(_SKIN) - 2)
        skin = _SKIN[k] * (1 - (t - k)) + _SKIN[k + 1] * (t - k)
        skin = skin * rng.uniform(0.94, 1.06, 3)
        hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2)
        lips = skin * np.array([0.82, 0.52, 0.52]) + np.array([30, 0, 8]) * rng.uniform(0.5, 1.2)
        blobs = tuple(
            (*rng.uniform(0, 1, 2), rng.uniform(0.05, 0.25), *rng.uniform(20, 235, 3))
            for _ in range(int(rng.integers(0, 4)))
        )
        return Appearance(
            skin=_rgb(skin),
            hair=_rgb(hair),
            iris=_rgb(_IRIS[rng.integers(len(_IRIS))] * rng.uniform(0.8, 1.2)),
            lips=_rgb(lips),
            bald=bool(rng.random() < 0.12),
            hairline=float(rng.uniform(0.1, 0.19)),
            hair_volume=float(rng.uniform(0.31, 0.4)),
            face_width=float(rng.uniform(0.27, 0.32)),
            bg=(_rgb(rng.uniform(15, 240, 3)), _rgb(rng.uniform(15, 240, 3))),
            bg_angle=float(rng.uniform(0, 2 * np.pi)),
            blobs=blobs,
            light_angle=float(rng.uniform(0, 2 * np.pi)),
            light_gain=float(rng.uniform(0.0, 0.3)),
            noise=float(rng.uniform(1.0, 6.0)),
        )


@dataclass(frozen=True)
class Pose:
    """Head pose: yaw (rad, + turns the face to the image right), roll (rad), scale, shift (unit)."""

    yaw: float = 0.0
    roll: float = 0.0
    scale: float = 1.0
    tx: float = 0.0
    ty: float = 0.0
    gaze: float = 0.0  # iris shift, fraction of the eye half-width

    @staticmethod
    def sample(rng: np.random.Generator) -> Pose:
        return Pose(
            yaw=float(rng.uniform(-0.3, 0.3)),
            roll=float(rng.uniform(-0.15, 0.15)),
            scale=float(rng.uniform(0.88, 1.05)),
            tx=float(rng.uniform(-0.04, 0.04)),
            ty=float(rng.uniform(-0.04, 0.04)),
            gaze=float(rng.uniform(-0.3, 0.3)),
        )

    def affine(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(A [2, 2], t [2], d [2])`` with ``pixels = A @ p + t + depth * d`` for unit-square points ``p``.

        Yaw compresses x about the centre by ``cos(yaw)`` and shifts each point by ``depth * sin(yaw)``;
        roll, scale and translation then act as a similarity transform about the image centre.
        """
        cy_, sy_ = math.cos(self.yaw), math.sin(self.yaw)
        c, s = math.cos(self.roll) * self.scale * size, math.sin(self.roll) * self.scale * size
        a = np.array([[c * cy_, -s], [s * cy_, c]], np.float32)
        t = np.array(
            [-0.5 * c * cy_ + 0.5 * s + (0.5 + self.tx) * size, -0.5 * s * cy_ - 0.5 * c + (0.5 + self.ty) * size],
            np.float32,
        )
        return a, t, np.array([c * sy_, s * sy_], np.float32)

    def apply(self, pts: np.ndarray, depth: np.ndarray | float, size: int) -> np.ndarray:
        """Unit-square points ``[N, 2]`` (with out-of-plane ``depth``, scalar or ``[N]``) -> pixels."""
        a, t, d = self.affine(size)
        return _transform(np.asarray(pts, np.float32).reshape(-1, 2), depth, a, t, d)


def _transform(pts: np.ndarray, depth: np.ndarray | float, a: np.ndarray, t: np.ndarray, d: np.ndarray) -> np.ndarray:
    out = pts @ a.T + t
    if np.ndim(depth):
        out += np.asarray(depth, np.float32)[:, None] * d
    else:
        out += float(depth) * d
    return out


def _rgb(v: np.ndarray) -> tuple[float, float, float]:
    v = np.clip(v, 0, 255)
    return (float(v[0]), float(v[1]), float(v[2]))


def _mix(a: tuple, b: tuple, t: float) -> tuple[float, float, float]:
    t = min(max(float(t), 0.0), 1.0)
    return (a[0] * (1 - t) + b[0] * t, a[1] * (1 - t) + b[1] * t, a[2] * (1 - t) + b[2] * t)


# Out-of-plane depth of each landmark (unit coordinates): the nose tip turns most with yaw.
_DEPTH = np.concatenate(
    [
        np.zeros(17),  # jaw outline
        np.full(10, 0.05),  # brows
        np.array([0.06, 0.08, 0.1, 0.12]),  # nose bridge
        np.array([0.07, 0.08, 0.09, 0.08, 0.07]),  # nose base
        np.full(12, 0.04),  # eyes
        np.full(20, 0.06),  # mouth
    ]
).astype(np.float32)


def _curve(x0: float, x1: float, y_mid: float, y_ends: float, u: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Points at parameters ``u`` in [-1, 1] on a curve from ``x0`` to ``x1``, ``y_ends`` at |u| = 1."""
    x = 0.5 * (x0 + x1) + 0.5 * (x1 - x0) * u
    y = y_mid + (y_ends - y_mid) * np.abs(u) ** power
    return np.stack([x, y], axis=1)


def _landmarks(a: np.ndarray, valence: float, arousal: float, app: Appearance) -> dict[str, np.ndarray]:
    """Canonical (unposed) 68 landmarks plus the auxiliary curves the renderer needs."""
    g = float(np.clip(0.85 + 0.15 * arousal, 0.6, 1.1))
    i = {au: float(a[_I[au]]) * g for au in AU_SET}
    pts = np.zeros((68, 2), np.float32)

    # Jaw 0-16: an ellipse arc through the chin; AU26 drops it, AU17 raises the chin.
    jaw_drop = 0.085 * i[26]
    down = _JAW_DOWN
    pts[0:17, 0] = 0.5 + app.face_width * _JAW_COS * (1 - 0.04 * i[26])
    pts[0:17, 1] = 0.47 + 0.40 * _JAW_SIN + jaw_drop * down**2 - 0.02 * i[17] * down**8

    # Brows 17-21 (image left, outer -> inner) and 22-26 (inner -> outer).
    u = _BROW_U  # 0 outer, 1 inner
    inner, outer = u**1.5, (1 - u) ** 1.5
    brow_y = (
        0.335
        - _BROW_ARCH
        - 0.055 * i[1] * inner
        - 0.05 * i[2] * outer
        + i[4] * (0.012 + 0.03 * inner)
        - 0.012 * arousal
    )
    knit = 0.03 * i[4] * inner
    pts[17:22, 0] = 0.235 + 0.215 * u + knit
    pts[17:22, 1] = brow_y
    pts[22:27, 0] = (1.0 - pts[17:22, 0])[::-1]
    pts[22:27, 1] = brow_y[::-1]

    # Nose: bridge 27-30, base 31-35; AU9 / AU10 lift the wings.
    lift = 0.018 * i[9] + 0.008 * i[10]
    pts[27:31] = [[0.5, 0.42], [0.5, 0.48], [0.5, 0.54], [0.5, 0.6 - 0.3 * lift]]
    spread = 1 + 0.12 * i[9]
    pts[31:36, 0] = 0.5 + np.array([-0.055, -0.027, 0.0, 0.027, 0.055]) * spread
    pts[31:36, 1] = np.array([0.628, 0.638, 0.643, 0.638, 0.628]) - lift

    # Eyes 36-41 (image left) and 42-47: lids from AU5 / AU6 / AU7 / arousal.
    hu = 0.042 * max(0.12, 1 + 0.85 * i[5] - 0.35 * i[7] - 0.25 * i[6] - 0.15 * i[4] + 0.2 * arousal)
    hl = 0.03 * max(0.12, 1 - 0.65 * i[7] - 0.6 * i[6] + 0.15 * i[5])
    eyes = []
    for cx, sign in ((0.35, -1.0), (0.65, 1.0)):
        cy, w = 0.43, 0.078
        lid_u = _LID_U
        upper = np.stack([cx + w * lid_u, 0.43 - hu * (1 - lid_u**2) ** 0.7], 1)
        lower = np.stack([cx + w * lid_u, 0.43 + hl * (1 - lid_u**2) ** 0.8], 1)
        eyes.append((upper, lower, cx, cy, w))
        k = 0.4
        uy, ly = hu * (1 - k**2) ** 0.7, hl * (1 - k**2) ** 0.8
        six = np.array(
            [[cx - w, cy], [cx - k * w, cy - uy], [cx + k * w, cy - uy], [cx + w, cy], [cx + k * w, cy + ly], [cx - k * w, cy + ly]]
        )
        if sign < 0:  # 36 outer, 37, 38 upper, 39 inner, 40, 41 lower
            pts[36:42] = six
        else:  # 42 inner, 43, 44 upper, 45 outer, 46, 47 lower
            pts[42:48] = six

    # Mouth: outer 48-59, inner 60-67.
    cy = 0.755 - 0.012 * i[17]
    half = 0.105 * (1 + 0.38 * i[20] + 0.12 * i[12] - 0.2 * i[23] - 0.1 * i[24] - 0.16 * i[14] - 0.08 * i[26])
    corner_y = cy - 0.004 - 0.04 * i[12] + 0.04 * i[15] + 0.006 * i[20] - 0.018 * valence
    opening = 0.014 * i[25] + 0.075 * i[26]
    thin = max(0.25, 1 - 0.6 * i[23] - 0.55 * i[24] - 0.2 * i[20])
    t_up, t_lo = 0.022 * thin, 0.028 * thin
    y_iu = cy - 0.3 * opening - 0.02 * i[10]
    y_il = cy + 0.7 * opening - 0.006 * i[17]
    y_ou = y_iu - t_up - 0.004
    y_ol = y_il + t_lo
    u_up = np.array([-1.0, -0.62, -0.28, 0.0, 0.28, 0.62, 1.0])
    upper = _curve(0.5 - half, 0.5 + half, y_ou, corner_y, u_up, 1.6)
    upper[[2, 4], 1] -= 0.004  # cupid's bow
    pts[48:55] = upper
    u_lo = np.array([0.62, 0.3, 0.0, -0.3, -0.62])
    pts[55:60] = _curve(0.5 - half, 0.5 + half, y_ol, corner_y, u_lo, 2.2)
    ih = 0.88 * half
    u_in = np.array([-1.0, -0.45, 0.0, 0.45, 1.0])
    inner_corner = corner_y + 0.12 * (cy - corner_y)
    pts[60:65] = _curve(0.5 - ih, 0.5 + ih, y_iu, inner_corner, u_in, 2.0)
    pts[65:68] = _curve(0.5 - ih, 0.5 + ih, y_il, inner_corner, np.array([0.45, 0.0, -0.45]), 2.0)
    return {"pts": pts, "eyes": eyes, "i": i}


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

"""Face geometry: the canonical (unposed) 68 iBUG landmarks deformed by AU intensities and VA.

Points live in a unit square (x right, y down, the face centred near (0.5, 0.5)); the table of
what each AU moves is in :mod:`affect.data.synthetic.face`.
"""

from __future__ import annotations

import numpy as np

from affect.data.synthetic.appearance import Appearance
from affect.labels import AU_SET

_I = {au: i for i, au in enumerate(AU_SET)}
_LID_U = np.linspace(-1, 1, 9)
_JAW_T = np.linspace(np.pi + 0.2, -0.2, 17)
_JAW_COS, _JAW_SIN = np.cos(_JAW_T), np.sin(_JAW_T)
_JAW_DOWN = np.clip(_JAW_SIN, 0, None)
_BROW_U = np.linspace(0.0, 1.0, 5)
_BROW_ARCH = 0.022 * np.sin(np.pi * (0.25 + 0.65 * _BROW_U))

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


"""Nuisance factors of a synthetic face, drawn from ``rng``: :class:`Appearance` (identity and scene)
and :class:`Pose` (head pose), plus the colour helpers the renderer shares with them.

Skin tone, hair colour / style / baldness, iris colour, background colours and blobs, an
illumination gradient, Gaussian pixel noise, and head pose (yaw +/- 0.3 rad, roll +/- 0.15 rad,
scale 0.88-1.05, translation +/- 4 % of the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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


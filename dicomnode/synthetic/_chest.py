"""Analytic chest phantom: tissue labels as a function of patient coordinates (mm).

The same function labels the voxels of a slice (for rendering) and arbitrary points (for
placing nodules inside the lungs), so the two always agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = ["ChestPhantom", "Tissue", "TISSUE_HU"]


class Tissue(enum.IntEnum):
    """Tissue labels of the phantom."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    LUNG = 3
    HEART = 4
    AORTA = 5
    CORTICAL_BONE = 6
    MARROW = 7
    CANAL = 8
    RIB = 9
    LIVER = 10
    TABLE = 11


#: Mean attenuation of each tissue (HU), indexed by :class:`Tissue`.
TISSUE_HU = np.array([-1000, -100, 45, -860, 40, 45, 750, 250, 15, 650, 58, -350], np.float32)


def _inside(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Points strictly inside the axis-aligned ellipse (an empty one when a semi-axis is 0)."""
    if ax <= 0 or ay <= 0:
        return np.zeros(np.broadcast(x, y).shape, bool)
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < 1.0


def _dome(t: float, start: float, end: float) -> float:
    """1 inside [start, end] of a unit interval, ellipsoidal fall-off to 0 at 0 and 1."""
    if t <= 0.0 or t >= 1.0:
        return 0.0
    if t < start:
        return float(np.sqrt(1.0 - ((start - t) / start) ** 2))
    if t > end:
        return float(np.sqrt(1.0 - ((t - end) / (1.0 - end)) ** 2))
    return 1.0


@dataclass(frozen=True)
class ChestPhantom:
    """An adult chest in patient coordinates (LPS; x to the left, y posterior, z to the head).

    Parameters
    ----------
    scale : float
        In-plane size factor (1.0: a 330 mm × 230 mm body outline).
    lung_bottom_mm, lung_top_mm : float
        z range of the lungs (bases to apices).
    aspect : float
        Antero-posterior size relative to the lateral one (1.0: the adult outline above).
    lung_scale : float
        Size of the lungs' cross-sections relative to the body (1.0: the default lungs).
    """

    scale: float
    lung_bottom_mm: float
    lung_top_mm: float
    aspect: float = 1.0
    lung_scale: float = 1.0

    def lung_t(self, z: float) -> float:
        """Position of ``z`` within the lungs: 0 at the bases, 1 at the apices."""
        return (z - self.lung_bottom_mm) / (self.lung_top_mm - self.lung_bottom_mm)

    def labels(self, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
        """Return the :class:`Tissue` label (uint8) of points ``(x, y)`` on the plane ``z``.

        ``x`` and ``y`` broadcast together (e.g. a column vector and a row vector for a slice).
        """
        s = self.scale
        xs, ys = x / s, y / (s * self.aspect)
        out = np.zeros(np.broadcast(xs, ys).shape, np.uint8)
        t = self.lung_t(z)
        lung = _dome(t, 0.12, 0.55) * self.lung_scale
        heart = _dome((t - 0.05) / 0.45, 0.5, 0.5) if 0.05 < t < 0.5 else 0.0
        chest = -0.05 < t < 1.02

        out[(ys > 130) & (ys < 138) & (np.abs(xs) < 200)] = Tissue.TABLE
        out[_inside(xs, ys, 0, 0, 165, 115)] = Tissue.FAT
        wall = _inside(xs, ys, 0, 0, 150, 100)
        out[wall] = Tissue.MUSCLE
        if t < 0.15:
            out[wall & _inside(xs, ys, -30, -5, 115, 85)] = Tissue.LIVER
        out[_inside(xs, ys, -75, -5, 55 * lung, 75 * lung)] = Tissue.LUNG
        out[_inside(xs, ys, 75, -5, 52 * lung, 75 * lung)] = Tissue.LUNG
        out[_inside(xs, ys, 15, -30, 50 * heart, 42 * heart)] = Tissue.HEART
        if chest:
            out[_inside(xs, ys, 22, 45, 12, 12)] = Tissue.AORTA
            ring = np.sqrt((xs / 150) ** 2 + (ys / 100) ** 2)
            phase = np.cos(2 * np.pi * (z / s + 0.35 * ys) / 28.0)
            rib = (ring > 0.9) & (ring < 0.99) & (phase > 0.5) & ((np.abs(xs) > 30) | (ys > 0))
            out[rib] = Tissue.RIB
            if t > 0.3:
                out[_inside(xs, ys, 0, -92, 12, 5)] = Tissue.CORTICAL_BONE
        out[_inside(xs, ys, 0, 62, 16, 16)] = Tissue.CORTICAL_BONE
        out[_inside(xs, ys, 0, 62, 13, 13)] = Tissue.MARROW
        out[_inside(xs, ys, 0, 100, 5, 10)] = Tissue.CORTICAL_BONE
        out[_inside(xs, ys, 0, 85, 7, 7)] = Tissue.CANAL
        return out

    def all_lung(self, points: np.ndarray) -> bool:
        """Return True when every point of the ``(n, 3)`` array lies in lung tissue."""
        for z in np.unique(points[:, 2]):
            on_plane = points[points[:, 2] == z]
            labels = self.labels(on_plane[:, 0], on_plane[:, 1], float(z))
            if np.any(labels != Tissue.LUNG):
                return False
        return True


def lung_texture_fields(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, components: int = 3
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Precompute a smooth 3-D texture as in-plane cos/sin fields and per-component z frequencies.

    The texture on plane ``z`` is ``sum(c * cos(kz * z) - s * sin(kz * z))`` over components.
    """
    cos_fields, sin_fields, kz = [], [], np.empty(components)
    for index in range(components):
        wavelength = rng.uniform(10.0, 40.0)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * np.pi / wavelength * direction
        phase = rng.uniform(0, 2 * np.pi)
        argument = (k[0] * x + k[1] * y + phase).astype(np.float32)
        amplitude = np.float32(12.0 / components**0.5)
        cos_fields.append(amplitude * np.cos(argument))
        sin_fields.append(amplitude * np.sin(argument))
        kz[index] = k[2]
    return cos_fields, sin_fields, kz

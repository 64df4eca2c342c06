"""Shapes painted into the chest CT: nodule bodies (smooth, lobulated, spiculated) and vessel trees.

Everything is painted one axial plane at a time with a linear partial-volume ramp, so a shape
blends into what lies under it (``hu += weight * (value - hu)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicomnode.synthetic._chest import ChestPhantom
from dicomnode.synthetic.truth import Nodule, NoduleKind, NoduleMargin

__all__ = [
    "BLOOD_HU",
    "CENTRAL_VESSEL_MM",
    "NoduleBody",
    "Tube",
    "nodule_body",
    "paint_ball",
    "paint_tube",
    "vessel_tree",
]

Vec3 = tuple[float, float, float]
BLOOD_HU = 40.0
SOLID_HU, CORE_HU, GROUND_GLASS_HU = 35.0, 25.0, -560.0
CORE_RATIO = 0.45


@dataclass(frozen=True)
class Tube:
    """A tapering tube (truncated cone with round ends) from ``start`` to ``end`` (mm)."""

    start: Vec3
    end: Vec3
    start_radius_mm: float
    end_radius_mm: float

    def z_range(self, margin: float) -> tuple[float, float]:
        """The z interval the tube (grown by ``margin``) covers."""
        reach = max(self.start_radius_mm, self.end_radius_mm) + margin
        return min(self.start[2], self.end[2]) - reach, max(self.start[2], self.end[2]) + reach


@dataclass(frozen=True)
class NoduleBody:
    """What to paint for one nodule: balls of the outer value, an optional core, spicules."""

    balls: tuple[tuple[Vec3, float], ...]
    outer_hu: float
    core: tuple[Vec3, float] | None
    spicules: tuple[Tube, ...]


def _unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=3)
    return vector / np.linalg.norm(vector)


def nodule_body(nodule: Nodule, rng: np.random.Generator) -> NoduleBody:
    """Build the shape of ``nodule`` (its margin and kind); ``rng`` draws lobes and spicules."""
    centre = np.asarray(nodule.centre_mm)
    radius = nodule.diameter_mm / 2
    outer = {NoduleKind.SOLID: SOLID_HU, NoduleKind.PART_SOLID: GROUND_GLASS_HU}.get(
        nodule.kind, GROUND_GLASS_HU
    )
    if nodule.kind is NoduleKind.GROUND_GLASS:
        outer = float(rng.uniform(-680.0, -450.0))
    balls: list[tuple[Vec3, float]] = []
    spicules: list[Tube] = []
    if nodule.margin is NoduleMargin.SMOOTH:
        balls.append((nodule.centre_mm, radius))
    elif nodule.margin is NoduleMargin.LOBULATED:
        balls.append((nodule.centre_mm, 0.7 * radius))
        for _ in range(int(rng.integers(3, 6))):
            offset = float(rng.uniform(0.3, 0.45)) * radius
            lobe = centre + _unit(rng) * offset
            balls.append((_vec(lobe), radius - offset))
    else:
        balls.append((nodule.centre_mm, 0.85 * radius))
        thickness = float(np.clip(0.12 * radius, 0.5, 1.2))
        for _ in range(int(rng.integers(6, 13))):
            direction = _unit(rng)
            tip = centre + direction * radius * float(rng.uniform(1.3, 2.0))
            spicules.append(
                Tube(_vec(centre + direction * 0.6 * radius), _vec(tip), thickness, 0.3)
            )
    core = None
    if nodule.kind is NoduleKind.PART_SOLID:
        core = (nodule.centre_mm, radius * CORE_RATIO)
    return NoduleBody(tuple(balls), outer, core, tuple(spicules))


def _vec(point: np.ndarray) -> Vec3:
    return (float(point[0]), float(point[1]), float(point[2]))


def paint_ball(
    hu: np.ndarray,
    centre: Vec3,
    radius: float,
    value: float,
    axes: tuple[np.ndarray, np.ndarray, float],
    ramp: float,
) -> None:
    """Blend a ball of ``value`` HU into the slice ``hu`` at height ``axes[2]``."""
    x, y, z = axes
    cx, cy, cz = centre
    dz = abs(z - cz)
    if dz > radius + ramp:
        return
    cols = np.nonzero(np.abs(x - cx) <= radius + ramp)[0]
    rows = np.nonzero(np.abs(y - cy) <= radius + ramp)[0]
    if cols.size == 0 or rows.size == 0:
        return
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    distance = np.sqrt(
        (x[window[1]][None, :] - cx) ** 2 + (y[window[0]][:, None] - cy) ** 2 + dz**2
    ).astype(np.float32)
    patch = hu[window]
    weight = np.clip((radius - distance) / ramp + 0.5, 0.0, 1.0)
    patch += weight * (np.float32(value) - patch)


def paint_tube(
    hu: np.ndarray,
    tube: Tube,
    value: float,
    axes: tuple[np.ndarray, np.ndarray, float],
    ramp: float,
    mask: np.ndarray | None = None,
) -> None:
    """Blend a tube of ``value`` HU into the slice ``hu``; only where ``mask`` when given."""
    x, y, z = axes
    low, high = tube.z_range(ramp)
    if not low <= z <= high:
        return
    reach = max(tube.start_radius_mm, tube.end_radius_mm) + ramp
    (ax, ay, az), (bx, by, bz) = tube.start, tube.end
    cols = np.nonzero((x >= min(ax, bx) - reach) & (x <= max(ax, bx) + reach))[0]
    rows = np.nonzero((y >= min(ay, by) - reach) & (y <= max(ay, by) + reach))[0]
    if cols.size == 0 or rows.size == 0:
        return
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    px = x[window[1]][None, :] - ax
    py = y[window[0]][:, None] - ay
    pz = z - az
    dx, dy, dz = bx - ax, by - ay, bz - az
    length2 = max(dx * dx + dy * dy + dz * dz, 1e-9)
    t = np.clip((px * dx + py * dy + pz * dz) / length2, 0.0, 1.0)
    distance = np.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2 + (pz - t * dz) ** 2)
    radius = tube.start_radius_mm + t * (tube.end_radius_mm - tube.start_radius_mm)
    weight = np.clip((radius - distance) / ramp + 0.5, 0.0, 1.0).astype(np.float32)
    if mask is not None:
        weight *= mask[window]
    patch = hu[window]
    patch += weight * (np.float32(value) - patch)


CENTRAL_VESSEL_MM = 5.0
"""Radius from which a vessel is a central (hilar) one: the hilar trunks start above it, the
lobar branches of :func:`vessel_tree` at 3-4.5 mm."""


def vessel_tree(rng: np.random.Generator, phantom: ChestPhantom) -> list[Tube]:
    """Branching, tapering pulmonary vessels from each hilum (painted inside the lungs only),
    then each side's hilar trunks (:func:`_hilar_trunks`).

    Each hilum sends 8-12 branches through 8 generations (radius x0.68 and length x0.66 per
    generation, children turning at random), down to vessels under a millimetre: as on a real
    chest CT, a slice through the mid lung crosses dozens of vessels, seen end-on as dots
    crowding the perihilar lung, among which a small nodule must still be found. (Trees of 5
    generations with straighter children left the lungs nearly empty: a detector trained on
    them missed small nodules among dense vessels.)
    """
    tubes: list[Tube] = []
    scale = np.asarray([phantom.scale, phantom.scale * phantom.aspect, 1.0])
    z_hilum = phantom.lung_bottom_mm + 0.5 * (phantom.lung_top_mm - phantom.lung_bottom_mm)
    hila = []
    for side in (-1.0, 1.0):
        hilum = np.asarray([side * 45.0 * phantom.scale, -5.0 * scale[1], z_hilum])
        hila.append((side, hilum))
        for _ in range(int(rng.integers(8, 13))):
            direction = _unit(rng)
            direction[0] = side * (abs(direction[0]) + 0.4)
            direction /= np.linalg.norm(direction)
            length = float(rng.uniform(40.0, 65.0)) * phantom.lung_scale
            _branch(rng, tubes, hilum, direction, float(rng.uniform(3.0, 4.5)), length, 7, scale)
    for side, hilum in hila:
        _hilar_trunks(rng, tubes, side, hilum, phantom, scale)
    return tubes


def _hilar_trunks(
    rng: np.random.Generator,
    tubes: list[Tube],
    side: float,
    hilum: np.ndarray,
    phantom: ChestPhantom,
    scale: np.ndarray,
) -> None:
    """The large central vessels of one lung, the brightest tubes of a chest CT.

    Adult anatomy: the right and left pulmonary arteries run from the mediastinum into the
    hilum at 11-17 mm diameter (main trunk under 29 mm), the interlobar (descending) artery
    goes on caudally and laterally at 9-16 mm, and the inferior pulmonary vein, 10-14 mm,
    runs from the lower lobe medially and forwards to the left atrium. Inside the lung mask
    they are large bright tubes beside the hilum, which a detector must not take for nodules.
    """
    s = phantom.scale
    radius = float(rng.uniform(5.5, 8.5))
    mediastinum = np.asarray(
        [
            side * float(rng.uniform(12.0, 20.0)) * s,
            float(rng.uniform(-15.0, 5.0)) * scale[1],
            hilum[2] + float(rng.uniform(5.0, 20.0)),
        ]
    )
    tubes.append(Tube(_vec(mediastinum), _vec(hilum), radius, 0.85 * radius))
    down = np.asarray([side * float(rng.uniform(0.2, 0.5)), float(rng.uniform(0.0, 0.4)), -1.0])
    down /= np.linalg.norm(down)
    length = float(rng.uniform(25.0, 45.0)) * phantom.lung_scale
    _branch(rng, tubes, hilum, down, 0.75 * radius, length, 3, scale)
    vein = float(rng.uniform(5.0, 7.0))
    lower_lobe = np.asarray(
        [
            side * float(rng.uniform(40.0, 55.0)) * s,
            float(rng.uniform(-5.0, 15.0)) * scale[1],
            hilum[2] - float(rng.uniform(15.0, 35.0)),
        ]
    )
    atrium = np.asarray(
        [
            side * float(rng.uniform(10.0, 18.0)) * s,
            float(rng.uniform(-25.0, -10.0)) * scale[1],
            hilum[2] - float(rng.uniform(10.0, 25.0)),
        ]
    )
    tubes.append(Tube(_vec(lower_lobe), _vec(atrium), 0.8 * vein, vein))
    outwards = np.asarray([side * 1.0, float(rng.uniform(0.0, 0.5)), float(rng.uniform(-0.5, 0.2))])
    outwards /= np.linalg.norm(outwards)
    _branch(rng, tubes, lower_lobe, outwards, 0.6 * vein, 30.0 * phantom.lung_scale, 3, scale)


def _branch(
    rng: np.random.Generator,
    tubes: list[Tube],
    start: np.ndarray,
    direction: np.ndarray,
    radius: float,
    length: float,
    depth: int,
    scale: np.ndarray,
) -> None:
    end = start + direction * length * scale
    end_radius = radius * 0.8
    tubes.append(Tube(_vec(start), _vec(end), radius, end_radius))
    if depth == 0:
        return
    for _ in range(2):
        child = direction + rng.normal(size=3) * 0.9
        child /= np.linalg.norm(child)
        _branch(rng, tubes, end, child, end_radius * 0.85, length * 0.66, depth - 1, scale)

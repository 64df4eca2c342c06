"""The airways of the chest CT: trachea, main bronchi and the bronchi beside the pulmonary arteries.

Every real chest CT shows them: air tubes with a soft-tissue wall, seen end-on as rings beside
the vessels. Sizes follow adult anatomy: a trachea of 15-22 mm (wall 2-3 mm) ending at the
carina a little above the hila, main bronchi of 10-14 mm, and intrapulmonary bronchi that run
beside the larger arteries with a broncho-arterial diameter ratio of 0.65-1.0 (healthy adults)
and a wall about a sixth of their outer diameter. A nodule detector that never saw an airway
takes bronchial rings and the carina for nodules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicomnode.synthetic._chest import ChestPhantom
from dicomnode.synthetic._ct_shapes import CENTRAL_VESSEL_MM, Tube, paint_tube

__all__ = ["AIR_HU", "WALL_HU", "Airway", "airway_tree", "paint_airway"]

AIR_HU = -1000.0
WALL_HU = 30.0
"""Bronchial wall: soft tissue (the painted ramp gives it partial volume)."""
_MIN_ARTERY_MM = 1.4
"""Arteries thinner than this (radius) get no bronchus drawn beside them."""


@dataclass(frozen=True)
class Airway:
    """One airway segment: its lumen, its wall thickness and whether it lies in a lung.

    Attributes
    ----------
    lumen : Tube
        The air-filled lumen.
    wall_mm : float
        Wall thickness around the lumen.
    in_lung : bool
        Painted inside the lungs only (intrapulmonary bronchi); the trachea and main bronchi
        run through the mediastinum.
    """

    lumen: Tube
    wall_mm: float
    in_lung: bool

    @property
    def wall(self) -> Tube:
        """The lumen grown by the wall."""
        return Tube(
            self.lumen.start,
            self.lumen.end,
            self.lumen.start_radius_mm + self.wall_mm,
            self.lumen.end_radius_mm + self.wall_mm,
        )


def _wall_mm(lumen_radius: float) -> float:
    """Wall thickness: about a sixth of the outer diameter, at least 0.5 mm."""
    return max(0.5, 0.5 * lumen_radius)


def airway_tree(
    rng: np.random.Generator, phantom: ChestPhantom, arteries: list[Tube]
) -> list[Airway]:
    """Trachea, main bronchi and a bronchus beside every artery of 1.4 mm radius up to the
    hilar trunks.

    ``arteries`` is the vessel tree of :func:`~dicomnode.synthetic._ct_shapes.vessel_tree`
    (empty: trachea and main bronchi only).
    """
    scale = np.asarray([phantom.scale, phantom.scale * phantom.aspect, 1.0])
    length = phantom.lung_top_mm - phantom.lung_bottom_mm
    z_hilum = phantom.lung_bottom_mm + 0.5 * length
    carina = (
        np.asarray([0.0, 20.0, z_hilum + float(rng.uniform(0.08, 0.15)) * length])
        * np.r_[1.0, scale[1], 1.0]
    )
    trachea_r = float(rng.uniform(7.5, 11.0))
    top = np.asarray([0.0, carina[1] - 5.0 * scale[1], phantom.lung_top_mm + 20.0])
    out = [Airway(_tube(top, carina, trachea_r, trachea_r), _wall_mm(trachea_r) * 0.6, False)]
    ratio = float(rng.uniform(0.65, 1.0))
    for side in (-1.0, 1.0):
        hilum = np.asarray([side * 45.0 * phantom.scale, -5.0 * scale[1], z_hilum])
        main_r = float(rng.uniform(5.0, 7.0))
        out.append(Airway(_tube(carina, hilum, main_r, 0.85 * main_r), 0.3 * main_r, False))
    reference = rng.normal(size=3)
    for artery in arteries:
        if not _MIN_ARTERY_MM <= artery.start_radius_mm < CENTRAL_VESSEL_MM:
            continue  # the hilar trunks have the main bronchi beside them
        start, end = np.asarray(artery.start), np.asarray(artery.end)
        across = np.cross(end - start, reference)
        norm = float(np.linalg.norm(across))
        if norm < 1e-6:
            continue
        lumen_start = ratio * artery.start_radius_mm
        lumen_end = ratio * artery.end_radius_mm
        wall = _wall_mm(lumen_end)
        gap = artery.start_radius_mm + lumen_start + wall + float(rng.uniform(0.3, 1.5))
        offset = across / norm * gap
        out.append(Airway(_tube(start + offset, end + offset, lumen_start, lumen_end), wall, True))
    return out


def _tube(start: np.ndarray, end: np.ndarray, start_radius: float, end_radius: float) -> Tube:
    return Tube(
        (float(start[0]), float(start[1]), float(start[2])),
        (float(end[0]), float(end[1]), float(end[2])),
        start_radius,
        end_radius,
    )


def paint_airway(
    hu: np.ndarray,
    airway: Airway,
    axes: tuple[np.ndarray, np.ndarray, float],
    ramp: float,
    lung: np.ndarray,
) -> None:
    """Blend one airway (wall, then air lumen) into the slice ``hu``; ``lung`` (0/1) masks
    an intrapulmonary bronchus."""
    mask = lung if airway.in_lung else None
    paint_tube(hu, airway.wall, WALL_HU, axes, ramp, mask)
    paint_tube(hu, airway.lumen, AIR_HU, axes, ramp, mask)

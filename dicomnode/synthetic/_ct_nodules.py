"""Where nodules go in the chest CT: free in a lung, against the chest wall, or on a vessel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicomnode.synthetic._chest import ChestPhantom, Tissue
from dicomnode.synthetic._ct_shapes import CORE_RATIO, Tube
from dicomnode.synthetic.common import axis_coordinates
from dicomnode.synthetic.truth import (
    Nodule,
    NoduleAttachment,
    NoduleKind,
    NoduleMargin,
    VolumeGeometry,
)

__all__ = ["NoduleMix", "NoduleSpec", "nodule_truth", "random_nodules"]

Vec3 = tuple[float, float, float]
_WALL = (Tissue.MUSCLE, Tissue.RIB, Tissue.FAT)


@dataclass(frozen=True)
class NoduleSpec:
    """A nodule requested at a given place.

    Parameters
    ----------
    centre_mm : tuple of float
        Centre in patient coordinates (mm); it should lie in a lung.
    diameter_mm : float
        Diameter, 3–30 mm.
    kind : NoduleKind or str
        ``"solid"``, ``"part_solid"`` or ``"ground_glass"``.
    margin : NoduleMargin or str
        ``"smooth"``, ``"lobulated"`` or ``"spiculated"``.
    attachment : NoduleAttachment or str
        What the nodule touches (recorded in the truth; the caller places it).
    """

    centre_mm: tuple[float, float, float]
    diameter_mm: float
    kind: NoduleKind | str = NoduleKind.SOLID
    margin: NoduleMargin | str = NoduleMargin.SMOOTH
    attachment: NoduleAttachment | str = NoduleAttachment.NONE

    def __post_init__(self) -> None:
        if not 3.0 <= self.diameter_mm <= 30.0:
            raise ValueError(f"diameter_mm must lie in 3–30 mm, got {self.diameter_mm}")
        object.__setattr__(self, "kind", NoduleKind(self.kind))
        object.__setattr__(self, "margin", NoduleMargin(self.margin))
        object.__setattr__(self, "attachment", NoduleAttachment(self.attachment))


@dataclass(frozen=True)
class NoduleMix:
    """Probabilities of the nodule families beyond solid/part-solid smooth free nodules.

    Parameters
    ----------
    ground_glass, lobulated, spiculated : float
        Probability that a random nodule is pure ground-glass, lobulated, spiculated.
    juxtapleural, juxtavascular : float
        Probability that a random nodule touches the chest wall, a vessel (needs vessels).
    log_sizes : bool
        Draw diameters uniformly on a log scale (as many 4-8 mm nodules as 13-26 mm ones, as in
        screening, where most nodules are small) instead of uniformly in mm.
    """

    ground_glass: float = 0.0
    lobulated: float = 0.0
    spiculated: float = 0.0
    juxtapleural: float = 0.0
    juxtavascular: float = 0.0
    log_sizes: bool = False

    def __post_init__(self) -> None:
        for name in ("ground_glass", "lobulated", "spiculated", "juxtapleural", "juxtavascular"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"NoduleMix.{name} must lie in 0..1, got {getattr(self, name)}")
        if self.lobulated + self.spiculated > 1.0 or self.juxtapleural + self.juxtavascular > 1.0:
            raise ValueError("NoduleMix: margin and attachment probabilities must each sum to <= 1")


@dataclass(frozen=True)
class _Scene:
    phantom: ChestPhantom
    z_low: float
    z_high: float
    vessels: tuple[Tube, ...]


def random_nodules(
    seed_rngs: tuple[np.random.Generator, np.random.Generator],
    phantom: ChestPhantom,
    geometry: VolumeGeometry,
    count: int,
    diameter_range: tuple[float, float],
    part_solid_probability: float,
    mix: NoduleMix,
    vessels: list[Tube],
) -> list[NoduleSpec]:
    """Place ``count`` nodules; ``seed_rngs`` is (placement stream, family stream).

    Raises
    ------
    ValueError
        When the nodules do not fit in the lungs of this volume.
    """
    rng, family = seed_rngs
    _, _, z = axis_coordinates(geometry)
    scene = _Scene(phantom, float(min(z[0], z[-1])), float(max(z[0], z[-1])), tuple(vessels))
    specs: list[NoduleSpec] = []
    for _ in range(count):
        attachment = _draw_attachment(family, mix, bool(vessels))
        for _attempt in range(500):
            diameter = (
                float(np.exp(rng.uniform(*np.log(diameter_range))))
                if mix.log_sizes
                else float(rng.uniform(*diameter_range))
            )
            centre = _place(rng, scene, diameter / 2, attachment, specs)
            if centre is not None:
                kind = _draw_kind(rng, family, part_solid_probability, mix)
                margin = _draw_margin(family, mix)
                specs.append(NoduleSpec(centre, round(diameter, 2), kind, margin, attachment))
                break
        else:
            raise ValueError(
                f"could not place {count} nodules in the lungs of volume shape {geometry.shape}"
            )
    return specs


def _draw_attachment(
    family: np.random.Generator, mix: NoduleMix, vessels: bool
) -> NoduleAttachment:
    if not (mix.juxtapleural or mix.juxtavascular):
        return NoduleAttachment.NONE
    draw = family.random()
    if draw < mix.juxtapleural:
        return NoduleAttachment.PLEURA
    if vessels and draw < mix.juxtapleural + mix.juxtavascular:
        return NoduleAttachment.VESSEL
    return NoduleAttachment.NONE


def _draw_kind(
    rng: np.random.Generator, family: np.random.Generator, part_solid: float, mix: NoduleMix
) -> NoduleKind:
    if mix.ground_glass and family.random() < mix.ground_glass:
        return NoduleKind.GROUND_GLASS
    return NoduleKind.PART_SOLID if rng.random() < part_solid else NoduleKind.SOLID


def _draw_margin(family: np.random.Generator, mix: NoduleMix) -> NoduleMargin:
    if not (mix.lobulated or mix.spiculated):
        return NoduleMargin.SMOOTH
    draw = family.random()
    if draw < mix.lobulated:
        return NoduleMargin.LOBULATED
    if draw < mix.lobulated + mix.spiculated:
        return NoduleMargin.SPICULATED
    return NoduleMargin.SMOOTH


def _place(
    rng: np.random.Generator,
    scene: _Scene,
    radius: float,
    attachment: NoduleAttachment,
    others: list[NoduleSpec],
) -> Vec3 | None:
    phantom = scene.phantom
    if attachment is NoduleAttachment.VESSEL:
        centre = _on_vessel(rng, scene, radius)
    else:
        centre = (
            float(rng.uniform(-140, 140) * phantom.scale),
            float(rng.uniform(-80, 70) * phantom.scale * phantom.aspect),
            float(
                rng.uniform(scene.z_low + radius, max(scene.z_low + radius, scene.z_high - radius))
            ),
        )
        if attachment is NoduleAttachment.PLEURA and phantom.all_lung(np.asarray([centre])):
            centre = _against_wall(rng, phantom, centre, radius)
    if centre is None or any(_too_close(centre, radius, other) for other in others):
        return None
    if not phantom.all_lung(np.asarray([centre])):
        return None
    if attachment is not NoduleAttachment.NONE and not _z_inside(scene, centre[2], radius):
        return None
    if attachment is NoduleAttachment.PLEURA:
        return centre
    margin = 1.0 if attachment is NoduleAttachment.VESSEL else 3.0
    points = np.asarray(centre) + _unit_sphere_points() * (radius + margin)
    points[:, 2] = np.clip(points[:, 2], scene.z_low, scene.z_high)
    return centre if phantom.all_lung(points) else None


def _z_inside(scene: _Scene, z: float, radius: float) -> bool:
    return scene.z_low + radius <= z <= max(scene.z_low + radius, scene.z_high - radius)


def _against_wall(
    rng: np.random.Generator, phantom: ChestPhantom, centre: Vec3, radius: float
) -> Vec3 | None:
    """Move ``centre`` outward until the nodule overlaps the chest wall by 30 % of its radius."""
    angle = float(rng.uniform(-1.2, 1.2))
    direction = np.asarray([np.sign(centre[0]) * np.cos(angle), np.sin(angle), 0.0])
    point = np.asarray(centre, float)
    for _ in range(250):
        point = point + direction
        label = int(phantom.labels(point[:1], point[1:2], float(point[2]))[0])
        if label != Tissue.LUNG:
            beyond = point + 2.0 * direction
            outside = int(phantom.labels(beyond[:1], beyond[1:2], float(beyond[2]))[0])
            if label not in _WALL and outside not in _WALL:
                return None
            moved = point - direction * 0.7 * radius
            return (float(moved[0]), float(moved[1]), float(moved[2]))
    return None


def _on_vessel(rng: np.random.Generator, scene: _Scene, radius: float) -> Vec3 | None:
    """A centre beside a random vessel of at least 1.2 mm radius, touching it: from the vessel
    running through the nodule (``0.5 * radius`` from its axis) to the vessel abutting it (the
    nodule's edge reaches 0.2 of the vessel's radius into the vessel).

    The vessel is drawn with a probability proportional to its mean radius: the few large
    central vessels, crowded with bronchi near the hilum, where a nodule is hardest to tell from
    the vessels around it, are chosen more often than their share of the tree's many branches.
    """
    candidates = [tube for tube in scene.vessels if tube.end_radius_mm >= 1.2]
    if not candidates:
        return None
    weights = np.asarray([t.start_radius_mm + t.end_radius_mm for t in candidates])
    tube = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
    start, end = np.asarray(tube.start), np.asarray(tube.end)
    axis = end - start
    along = float(rng.uniform(0.2, 0.8))
    on_axis = start + axis * along
    side = rng.normal(size=3)
    side -= axis * (side @ axis) / max(float(axis @ axis), 1e-9)
    side /= max(float(np.linalg.norm(side)), 1e-9)
    vessel = tube.start_radius_mm + along * (tube.end_radius_mm - tube.start_radius_mm)
    centre = on_axis + side * float(rng.uniform(0.5 * radius, radius + 0.8 * vessel))
    return (float(centre[0]), float(centre[1]), float(centre[2]))


def _unit_sphere_points() -> np.ndarray:
    grid = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1]), axis=-1).reshape(-1, 3)
    points = grid[np.any(grid != 0, axis=1)].astype(float)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def _too_close(centre: Vec3, radius: float, other: NoduleSpec) -> bool:
    distance = float(np.linalg.norm(np.subtract(centre, other.centre_mm)))
    return distance < radius + other.diameter_mm / 2 + 10.0


def nodule_truth(spec: NoduleSpec, geometry: VolumeGeometry) -> Nodule:
    """The ground truth of a placed nodule."""
    kind = NoduleKind(spec.kind)
    solid = {NoduleKind.SOLID: spec.diameter_mm, NoduleKind.GROUND_GLASS: 0.0}.get(
        kind, spec.diameter_mm * CORE_RATIO
    )
    return Nodule(
        centre_mm=tuple(float(v) for v in spec.centre_mm),  # type: ignore[arg-type]
        diameter_mm=float(spec.diameter_mm),
        kind=kind,
        centre_index=geometry.patient_to_index(*spec.centre_mm),
        solid_diameter_mm=round(solid, 3),
        margin=NoduleMargin(spec.margin),
        attachment=NoduleAttachment(spec.attachment),
    )

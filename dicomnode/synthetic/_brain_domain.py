"""Domain variation of the FLAIR head phantom: orientation, fat, lesion families, bias, scale.

Used by :func:`dicomnode.synthetic.mr.brain_mr` when it is given a :class:`FlairVariation`;
without one the generator keeps its original (axial, fat-free, fixed-contrast) output.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dicomnode.synthetic._brain import BrainAnatomy, BrainTissue, _blur, _ellipsoid, _lesion
from dicomnode.synthetic.truth import Lesion, VolumeGeometry

__all__ = [
    "FlairVariation",
    "LesionPlacement",
    "Orientation",
    "add_fat",
    "oriented_geometry",
    "place_varied_lesions",
    "render_varied_flair",
    "voxel_coordinates",
]

#: FLAIR signal of fat (scalp, orbit, skull base): brighter than white matter (430).
FAT_FLAIR_SIGNAL = 820.0
_WHITE_FLAIR_SIGNAL = 430.0
_REFERENCE_MAX = 4095.0


class Orientation(enum.StrEnum):
    """Acquisition plane of a 2-D MR series."""

    AXIAL = "axial"
    SAGITTAL = "sagittal"
    CORONAL = "coronal"


class LesionPlacement(enum.StrEnum):
    """Where in the white matter a lesion is centred."""

    ANYWHERE = "anywhere"
    PERIVENTRICULAR = "periventricular"
    JUXTACORTICAL = "juxtacortical"
    DEEP = "deep"


#: (row direction, column direction) of each plane before tilting, DICOM LPS.
_PLANES = {
    Orientation.AXIAL: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    Orientation.SAGITTAL: ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    Orientation.CORONAL: ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}


@dataclass(frozen=True)
class FlairVariation:
    """The domain families of a FLAIR study beyond shape, spacing and noise.

    Parameters
    ----------
    bias_range : float
        Half range of a smooth multiplicative bias field: 0.4 spans 0.6–1.4 over the field of
        view (0: none beyond the original gentle linear ramp).
    lesion_contrast : tuple of float, optional
        Range of ``(lesion - white matter) / white matter`` drawn per lesion, e.g. ``(0.1, 0.2)``
        for faint lesions; None keeps the fixed original signal (about +120 %).
    placements : tuple of LesionPlacement
        Lesion sites drawn from, one per lesion.
    confluent_probability : float
        Chance that a lesion is a chain of 3–6 merged ovoids.
    irregularity : float
        0: smooth ovoids; up to 0.6: radially perturbed, irregular outlines.
    fat : bool
        Add scalp fat, orbital fat and skull-base fat (bright on FLAIR, not lesions).
    head_scale : float
        Size of the head relative to the phantom that fits the field of view (0.8–1.1).
    orientation : Orientation or str
        Acquisition plane.
    tilt_deg : float
        Oblique tilt of the plane about its row direction (|tilt| ≤ 20).
    max_value : int
        Stored value of the brightest tissue in the original 12-bit scale, rescaled to this
        (e.g. 1000, 4000, 30000); BitsStored follows.
    rescale_slope : float
        RescaleSlope written; stored values are divided by it so that the rescaled values keep
        the range set by ``max_value``.
    anatomy : BrainAnatomy, optional
        Shape of the head and brain, and the white matter's heterogeneity (None: the original).
    cortical_probability : float
        Chance that a lesion may take the cortex it reaches as well as white matter (0: white
        matter only). MS lesions are juxtacortical (touching the cortex) and leukocortical
        (spanning the grey-white junction); a lesion drawn near the cortex then replaces
        cortex, which is brighter than white matter on FLAIR, so that a faint lesion can be
        darker than the cortex beside it.
    grey_white_ratio : float, optional
        FLAIR grey-matter signal over white matter (None: the original 560/430, about 1.3);
        1.1-1.35 in adults depending on field strength, inversion time and age.
    """

    bias_range: float = 0.0
    lesion_contrast: tuple[float, float] | None = None
    placements: tuple[LesionPlacement, ...] = (LesionPlacement.ANYWHERE,)
    confluent_probability: float = 0.0
    irregularity: float = 0.0
    fat: bool = False
    head_scale: float = 1.0
    orientation: Orientation = Orientation.AXIAL
    tilt_deg: float = 0.0
    max_value: int = 4095
    rescale_slope: float = 1.0
    anatomy: BrainAnatomy | None = None
    cortical_probability: float = 0.0
    grey_white_ratio: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "orientation", Orientation(self.orientation))
        object.__setattr__(self, "placements", tuple(LesionPlacement(p) for p in self.placements))
        if not 0 <= self.bias_range < 1:
            raise ValueError(f"bias_range must lie in [0, 1), got {self.bias_range}")
        if self.lesion_contrast is not None and not (
            0 < self.lesion_contrast[0] <= self.lesion_contrast[1]
        ):
            raise ValueError(
                f"lesion_contrast must be an increasing positive pair: {self.lesion_contrast}"
            )
        if not self.placements:
            raise ValueError("placements must name at least one LesionPlacement")
        if not 0 <= self.confluent_probability <= 1:
            raise ValueError(
                f"confluent_probability must lie in [0, 1], got {self.confluent_probability}"
            )
        if not 0 <= self.irregularity <= 0.6:
            raise ValueError(f"irregularity must lie in [0, 0.6], got {self.irregularity}")
        if not 0.5 <= self.head_scale <= 1.3:
            raise ValueError(f"head_scale must lie in [0.5, 1.3], got {self.head_scale}")
        if abs(self.tilt_deg) > 20:
            raise ValueError(f"tilt_deg must lie in [-20, 20], got {self.tilt_deg}")
        if not 255 <= self.max_value <= 65535:
            raise ValueError(f"max_value must lie in 255..65535, got {self.max_value}")
        if not 0.01 <= self.rescale_slope <= 100:
            raise ValueError(f"rescale_slope must lie in [0.01, 100], got {self.rescale_slope}")
        if not 0 <= self.cortical_probability <= 1:
            raise ValueError(
                f"cortical_probability must lie in [0, 1], got {self.cortical_probability}"
            )
        if self.grey_white_ratio is not None and not 1.0 <= self.grey_white_ratio <= 1.5:
            raise ValueError(f"grey_white_ratio must lie in [1, 1.5], got {self.grey_white_ratio}")

    @property
    def bits_stored(self) -> int:
        """BitsStored that holds the stored values (at least 12)."""
        top = math.ceil(1.15 * self.max_value / self.rescale_slope)
        return min(16, max(12, top.bit_length()))


def _rotate(vector: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues rotation of ``vector`` about the unit ``axis``."""
    angle = math.radians(degrees)
    return (
        vector * math.cos(angle)
        + np.cross(axis, vector) * math.sin(angle)
        + axis * np.dot(axis, vector) * (1 - math.cos(angle))
    )


def oriented_geometry(
    shape: tuple[int, int, int],
    *,
    pixel_spacing_mm: float,
    slice_spacing_mm: float,
    slice_thickness_mm: float,
    centre_mm: tuple[float, float, float],
    orientation: Orientation,
    tilt_deg: float,
) -> VolumeGeometry:
    """Geometry of a ``(slices, rows, columns)`` stack in ``orientation`` around ``centre_mm``."""
    row, column = (np.asarray(v) for v in _PLANES[orientation])
    column = _rotate(column, row, tilt_deg)
    normal = np.cross(row, column)
    slices, rows, columns = shape
    half = (
        row * (columns - 1) / 2 * pixel_spacing_mm
        + column * (rows - 1) / 2 * pixel_spacing_mm
        + normal * (slices - 1) / 2 * slice_spacing_mm
    )
    origin = np.asarray(centre_mm) - half

    def clean(v: np.ndarray) -> tuple[float, float, float]:
        return tuple(float(round(c, 12)) + 0.0 for c in v)  # type: ignore[return-value]

    return VolumeGeometry(
        shape=shape,
        origin_mm=clean(origin),
        row_direction=clean(row),
        column_direction=clean(column),
        slice_direction=clean(normal),
        pixel_spacing_mm=(pixel_spacing_mm, pixel_spacing_mm),
        slice_spacing_mm=slice_spacing_mm,
        slice_thickness_mm=slice_thickness_mm,
    )


def voxel_coordinates(geometry: VolumeGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full ``[k, j, i]`` float32 arrays of the patient x, y, z (mm) of every voxel."""
    slices, rows, columns = geometry.shape
    matrix = geometry.affine().astype(np.float32)
    i = np.arange(columns, dtype=np.float32)[None, None, :]
    j = np.arange(rows, dtype=np.float32)[None, :, None]
    k = np.arange(slices, dtype=np.float32)[:, None, None]
    return tuple(  # type: ignore[return-value]
        matrix[axis, 0] * i + matrix[axis, 1] * j + matrix[axis, 2] * k + matrix[axis, 3]
        for axis in range(3)
    )


def add_fat(
    tissue: np.ndarray,
    coordinates: tuple[np.ndarray, np.ndarray, np.ndarray],
    scale: float,
    centre_z: float,
    anatomy: BrainAnatomy | None = None,
) -> None:
    """Label scalp fat (outer scalp), orbital fat and skull-base fat as FAT, in place."""
    xs, ys, zs = (anatomy or BrainAnatomy()).head_frame(*coordinates, scale, centre_z)
    extracranial = (tissue == BrainTissue.SCALP) | (tissue == BrainTissue.SKULL)
    scalp_fat = (tissue == BrainTissue.SCALP) & (
        _ellipsoid(xs, ys, zs, (0, 0, 0), (73.0, 93.0, 88.0)) < 1
    )
    fat = scalp_fat
    for side in (-1.0, 1.0):  # orbits: anterior (-y), inferior, either side of the midline
        fat |= extracranial & (_ellipsoid(xs, ys, zs, (30 * side, -78, -28), (14, 13, 11)) < 1)
    fat |= extracranial & (_ellipsoid(xs, ys, zs, (0, -20, -72), (40, 45, 12)) < 1)
    tissue[fat] = BrainTissue.FAT


def _placement_zones(
    tissue: np.ndarray, geometry: VolumeGeometry
) -> dict[LesionPlacement, np.ndarray]:
    """Flat indices of the white-matter voxels of each placement."""
    sampling = (geometry.slice_spacing_mm, *geometry.pixel_spacing_mm)
    white = tissue == BrainTissue.WHITE_MATTER
    csf = tissue == BrainTissue.CSF
    components, count = ndimage.label(csf)
    sizes = np.bincount(components.ravel())[1:]
    ventricles = (components > 0) & (components != int(np.argmax(sizes)) + 1) if count > 1 else csf
    to_ventricle = ndimage.distance_transform_edt(~ventricles, sampling=sampling)
    to_cortex = ndimage.distance_transform_edt(tissue != BrainTissue.GREY_MATTER, sampling=sampling)
    zones = {
        LesionPlacement.ANYWHERE: white,
        LesionPlacement.PERIVENTRICULAR: white & (to_ventricle < 7.0),
        LesionPlacement.JUXTACORTICAL: white & (to_cortex < 4.0),
        LesionPlacement.DEEP: white & (to_ventricle > 9.0) & (to_cortex > 6.0),
    }
    return {place: np.flatnonzero(zone if zone.any() else white) for place, zone in zones.items()}


def _box(centre_index: np.ndarray, reach_mm: float, geometry: VolumeGeometry) -> tuple[slice, ...]:
    spacing = (geometry.slice_spacing_mm, *geometry.pixel_spacing_mm)
    return tuple(
        slice(max(0, int(c - reach_mm / s) - 1), min(n, int(c + reach_mm / s) + 2))
        for c, s, n in zip(centre_index, spacing, geometry.shape, strict=True)
    )


def _blob_shape(
    rng: np.random.Generator,
    centre: np.ndarray,
    radius: float,
    confluent: bool,
    irregularity: float,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Ovoids (centre, semi-axes, rotation) of one lesion."""
    count = int(rng.integers(3, 7)) if confluent else int(rng.integers(1, 3))
    blobs, position = [], centre.copy()
    for n in range(count):
        size = radius * (1.0 if n == 0 else float(rng.uniform(0.5, 0.9)))
        axes = size * rng.uniform(1 - 0.5 * irregularity - 0.1, 1 + 0.3 * irregularity, 3)
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        blobs.append((position.copy(), np.maximum(axes, 0.8), rotation))
        step = rng.normal(size=3)
        position = position + step / np.linalg.norm(step) * size * (1.2 if confluent else 0.8)
    return blobs


def place_varied_lesions(
    rng: np.random.Generator,
    tissue: np.ndarray,
    geometry: VolumeGeometry,
    coordinates: tuple[np.ndarray, np.ndarray, np.ndarray],
    count: int,
    radius_range_mm: tuple[float, float],
    variation: FlairVariation,
) -> tuple[np.ndarray, list[Lesion]]:
    """Place ``count`` lesions of the families in ``variation``; lesion voxels become LESION."""
    labels = np.zeros(tissue.shape, np.uint16)
    zones = _placement_zones(tissue, geometry) if count else {}
    lesions: list[Lesion] = []
    attempts = 0
    while len(lesions) < count:
        attempts += 1
        if attempts > 200 * count:
            raise ValueError(f"could not place {count} lesions in volume shape {tissue.shape}")
        zone = zones[variation.placements[int(rng.integers(len(variation.placements)))]]
        index = np.asarray(np.unravel_index(int(rng.choice(zone)), tissue.shape))
        centre = np.array([c[tuple(index)] for c in coordinates], float)
        radius = float(rng.uniform(*radius_range_mm))
        confluent = bool(rng.random() < variation.confluent_probability)
        blobs = _blob_shape(rng, centre, radius, confluent, variation.irregularity)
        box = _box(index, radius * (7.0 if confluent else 2.5), geometry)
        points = np.stack([np.broadcast_to(c, tissue.shape)[box] for c in coordinates], -1)
        inside = np.zeros(points.shape[:-1], bool)
        for blob_centre, axes, rotation in blobs:
            local = (points - blob_centre) @ rotation
            radial = np.sqrt(((local / axes) ** 2).sum(-1))
            if variation.irregularity:
                phase = rng.uniform(0, 2 * np.pi, 3)
                wobble = sum(np.sin(local[..., a] / axes[a] * 3 + phase[a]) for a in range(3))
                radial = radial * (1 + variation.irregularity / 3 * wobble)
            inside |= radial < 1
        allowed = tissue[box] == BrainTissue.WHITE_MATTER
        if variation.cortical_probability and rng.random() < variation.cortical_probability:
            allowed |= tissue[box] == BrainTissue.GREY_MATTER
        inside &= allowed & (labels[box] == 0)
        grown = ndimage.binary_dilation(labels[box] > 0, iterations=2)
        if np.count_nonzero(inside) < 3 or (inside & grown).any():
            continue
        label = len(lesions) + 1
        labels[box][inside] = label
        tissue[box][inside] = BrainTissue.LESION
        full = labels == label
        lesions.append(_lesion(label, full, geometry))
    return labels, lesions


def _bias_field(
    rng: np.random.Generator,
    coordinates: tuple[np.ndarray, np.ndarray, np.ndarray],
    half_range: float,
) -> np.ndarray:
    """A smooth field spanning exactly ``1 ± half_range`` over the volume (sum of cosines)."""
    x, y, z = coordinates
    field = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), np.float32)
    for _ in range(4):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        wavelength = float(rng.uniform(180.0, 400.0))
        phase = float(rng.uniform(0, 2 * np.pi))
        w = np.float32(2 * np.pi / wavelength)
        field += np.cos(w * (direction[0] * x + direction[1] * y + direction[2] * z) + phase)
    low, high = float(field.min()), float(field.max())
    unit = (field - low) / np.float32(max(high - low, 1e-6)) * 2 - 1
    return 1 + np.float32(half_range) * unit


def _white_matter_field(
    rng: np.random.Generator, tissue: np.ndarray, geometry: VolumeGeometry, amplitude: float
) -> np.ndarray:
    """Multiplicative field on the white matter (and the lesions in it), 1 elsewhere.

    Normal white matter is not uniform on FLAIR: the corticospinal tracts, the posterior
    periventricular white matter and the frontal caps are a few to about ten percent brighter
    than the rest, in regions of one to a few centimetres. Smoothed noise (8-16 mm Gaussian)
    with 2.5 standard deviations (inside the white matter) scaled to ``amplitude``, clipped
    there, gives such regions at random places.
    """
    spacing = np.asarray((geometry.slice_spacing_mm, *geometry.pixel_spacing_mm))
    sigma = float(rng.uniform(8.0, 16.0)) / spacing
    noise = rng.normal(size=tissue.shape).astype(np.float32)
    field = ndimage.gaussian_filter(noise, sigma, mode="nearest")
    inside = (tissue == BrainTissue.WHITE_MATTER) | (tissue == BrainTissue.LESION)
    if not inside.any():
        return np.ones(tissue.shape, np.float32)
    field /= np.float32(max(2.5 * float(field[inside].std()), 1e-6))
    np.clip(field, -1, 1, out=field)
    return np.where(inside, 1 + np.float32(amplitude) * field, np.float32(1))


def render_varied_flair(
    tissue: np.ndarray,
    labels: np.ndarray,
    geometry: VolumeGeometry,
    coordinates: tuple[np.ndarray, np.ndarray, np.ndarray],
    texture: np.ndarray,
    signal_table: tuple[float, ...],
    rng: np.random.Generator,
    noise: float,
    variation: FlairVariation,
) -> np.ndarray:
    """Return the stored FLAIR values: signal, lesion contrasts, bias field, noise, scale."""
    table = np.asarray((*signal_table, FAT_FLAIR_SIGNAL), np.float32)
    if variation.grey_white_ratio is not None:
        table[BrainTissue.GREY_MATTER] = _WHITE_FLAIR_SIGNAL * variation.grey_white_ratio
    signal = table[tissue]
    if variation.lesion_contrast is not None:
        for label in range(1, int(labels.max()) + 1):
            contrast = float(rng.uniform(*variation.lesion_contrast))
            signal[labels == label] = _WHITE_FLAIR_SIGNAL * (1 + contrast)
    if variation.anatomy is not None and variation.anatomy.white_heterogeneity:
        amplitude = variation.anatomy.white_heterogeneity
        signal *= _white_matter_field(rng, tissue, geometry, amplitude)
    signal = _blur(_blur(signal * texture, 1), 2)
    if variation.bias_range:
        signal *= _bias_field(rng, coordinates, variation.bias_range)
    real = signal + rng.normal(0.0, noise, size=signal.shape).astype(np.float32)
    imaginary = rng.normal(0.0, noise, size=signal.shape).astype(np.float32)
    magnitude = np.sqrt(real**2 + imaginary**2)
    factor = variation.max_value / _REFERENCE_MAX / variation.rescale_slope
    top = (1 << variation.bits_stored) - 1
    return np.clip(np.rint(magnitude * np.float32(factor)), 0, top).astype(np.uint16)

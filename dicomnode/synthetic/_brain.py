"""Analytic head phantom for the MR generator: tissue labels, lesions, contrast per sequence."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dicomnode.synthetic.truth import Lesion, VolumeGeometry

__all__ = [
    "BrainAnatomy",
    "BrainTissue",
    "MRSequence",
    "brain_labels",
    "place_lesions",
    "render_sequence",
    "tissue_texture",
]


class BrainTissue(enum.IntEnum):
    """Tissue labels of the head phantom."""

    BACKGROUND = 0
    SCALP = 1
    SKULL = 2
    CSF = 3
    GREY_MATTER = 4
    WHITE_MATTER = 5
    LESION = 6
    FAT = 7


class MRSequence(enum.StrEnum):
    """Contrasts of a BraTS-style study."""

    T1 = "T1"
    T1C = "T1C"
    T2 = "T2"
    FLAIR = "FLAIR"


#: Mean signal of each tissue per sequence, indexed by :class:`BrainTissue`.
_SIGNAL: dict[MRSequence, tuple[float, ...]] = {
    MRSequence.FLAIR: (0, 380, 40, 70, 560, 430, 950),
    MRSequence.T1: (0, 900, 60, 180, 520, 720, 430),
    MRSequence.T1C: (0, 900, 60, 180, 520, 720, 1100),
    MRSequence.T2: (0, 600, 50, 1500, 800, 620, 1250),
}


def _ellipsoid(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: tuple[float, float, float], axes: tuple
) -> np.ndarray:
    """Squared normalised radius of the points with respect to an axis-aligned ellipsoid."""
    return (
        ((x - centre[0]) / axes[0]) ** 2
        + ((y - centre[1]) / axes[1]) ** 2
        + ((z - centre[2]) / axes[2]) ** 2
    )


@dataclass(frozen=True)
class BrainAnatomy:
    """The shape of one brain; the defaults are the original phantom's.

    Parameters
    ----------
    aspect : tuple of float
        Left-right, front-back and head-foot stretch of the whole head (cephalic index).
    rotation_deg : tuple of float
        Rotation of the head about the left-right, front-back and head-foot axes (degrees): how
        the patient lies in the coil, independent of the acquisition plane.
    brain_extent : float
        Outer surface of the grey matter in units of the brain's ellipsoid (0.93); smaller
        leaves a wider subarachnoid CSF space (atrophy).
    white_extent : float
        Outer surface of the white matter in the same units (0.8); ``brain_extent -
        white_extent`` is the cortex.
    fold_depth : float
        Relative depth of the gyral folding of the white-matter surface (0.06).
    fold_wavelength : float
        Size factor of the gyri (1: about 25-30 mm from gyrus to gyrus).
    fold_phase : tuple of float
        Phase of the folding pattern along each axis (radians).
    ventricle_size : tuple of float
        Width, length and height of the lateral ventricles relative to the original.
    ventricle_asymmetry : float
        Relative size difference of the right and left lateral ventricles.
    horns : float
        Size of the frontal and occipital horns relative to the ventricle body (0: none).
    white_heterogeneity : float
        Peak relative amplitude of a smooth, low-frequency variation of the white matter's FLAIR
        signal (0: uniform white matter).
    """

    aspect: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    brain_extent: float = 0.93
    white_extent: float = 0.8
    fold_depth: float = 0.06
    fold_wavelength: float = 1.0
    fold_phase: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ventricle_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ventricle_asymmetry: float = 0.0
    horns: float = 0.0
    white_heterogeneity: float = 0.0

    def __post_init__(self) -> None:
        if not 0.5 <= self.white_extent < self.brain_extent <= 1.0:
            raise ValueError(
                "need 0.5 <= white_extent < brain_extent <= 1, got "
                f"{self.white_extent}, {self.brain_extent}"
            )
        if not 0 <= self.white_heterogeneity <= 0.3:
            raise ValueError(
                f"white_heterogeneity must lie in [0, 0.3], got {self.white_heterogeneity}"
            )
        if min(*self.aspect, *self.ventricle_size, self.fold_wavelength) <= 0:
            raise ValueError("aspect, ventricle_size and fold_wavelength must be positive")

    def head_frame(
        self, x: np.ndarray, y: np.ndarray, z: np.ndarray, scale: float, centre_z: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Head-frame coordinates (mm, unit head) of patient coordinates: moved to the head's
        centre, turned by :attr:`rotation_deg`, divided by ``scale`` and :attr:`aspect`."""
        points = [x / scale, y / scale, (z - centre_z) / scale]
        if any(self.rotation_deg):
            matrix = _rotation(self.rotation_deg)
            points = [sum(matrix[r, c] * points[c] for c in range(3)) for r in range(3)]
        if self.aspect != (1.0, 1.0, 1.0):
            points = [p / np.float32(a) for p, a in zip(points, self.aspect, strict=True)]
        return points[0], points[1], points[2]


def _rotation(degrees: tuple[float, float, float]) -> np.ndarray:
    """Rotation matrix of successive rotations about x, y and z (float32)."""
    ax, ay, az = np.radians(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return (rz @ ry @ rx).astype(np.float32)


def brain_labels(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    scale: float,
    centre_z: float,
    anatomy: BrainAnatomy | None = None,
) -> np.ndarray:
    """Label the grid spanned by broadcastable coordinate arrays (mm) with :class:`BrainTissue`.

    Parameters
    ----------
    x, y, z : numpy.ndarray
        Coordinates shaped ``(1, 1, n_i)``, ``(1, n_j, 1)`` and ``(n_k, 1, 1)``.
    scale : float
        Size factor (1.0: a 150 mm × 190 mm head).
    centre_z : float
        z of the centre of the head.
    anatomy : BrainAnatomy, optional
        Shape of the brain (None: the original phantom's).
    """
    shape = anatomy or BrainAnatomy()
    xs, ys, zs = shape.head_frame(x, y, z, scale, centre_z)
    labels = np.zeros(np.broadcast_shapes(xs.shape, ys.shape, zs.shape), np.uint8)
    origin = (0.0, 0.0, 0.0)
    labels[_ellipsoid(xs, ys, zs, origin, (75, 95, 90)) < 1] = BrainTissue.SCALP
    labels[_ellipsoid(xs, ys, zs, origin, (70, 90, 85)) < 1] = BrainTissue.SKULL
    brain = _ellipsoid(xs, ys, zs, (0, 2, -3), (63, 83, 76))
    labels[brain < 1] = BrainTissue.CSF
    labels[brain < shape.brain_extent**2] = BrainTissue.GREY_MATTER
    wave = shape.fold_wavelength
    phase = shape.fold_phase
    folds = 1 + shape.fold_depth * np.sin(xs / (4.0 * wave) + phase[0]) * np.sin(
        ys / (5.0 * wave) + phase[1]
    ) * np.cos(zs / (4.5 * wave) + phase[2])
    labels[brain * folds**2 < shape.white_extent**2] = BrainTissue.WHITE_MATTER
    width, length, height = shape.ventricle_size
    for side in (-1.0, 1.0):
        size = 1 + side * shape.ventricle_asymmetry / 2
        axes = (6 * width * size, 22 * length * size, 11 * height * size)
        centre = (side * (3 + 6 * width * size), -5, 8)
        ventricle = _ellipsoid(xs, ys, zs, centre, axes)
        labels[ventricle < 1] = BrainTissue.CSF
        if shape.horns:  # frontal horn (forward, down) and occipital horn (back, out)
            for offset, spread in ((-22.0, 0.0), (20.0, 5.0)):
                horn_centre = (centre[0] + side * spread, -5 + offset * length, 4)
                horn_axes = tuple(a * shape.horns for a in (axes[0], 10.0 * length, axes[2]))
                labels[_ellipsoid(xs, ys, zs, horn_centre, horn_axes) < 1] = BrainTissue.CSF
    return labels


def place_lesions(
    rng: np.random.Generator,
    tissue: np.ndarray,
    geometry: VolumeGeometry,
    coordinates: tuple[np.ndarray, np.ndarray, np.ndarray],
    count: int,
    radius_range_mm: tuple[float, float],
) -> tuple[np.ndarray, list[Lesion]]:
    """Draw ``count`` lesions (unions of 1–3 spheres) inside the white matter.

    Lesion voxels become :attr:`BrainTissue.LESION` in ``tissue`` (in place).

    Returns
    -------
    labels : numpy.ndarray
        uint16 volume, ``n`` on the voxels of lesion ``n``.
    lesions : list of Lesion
    """
    x, y, z = coordinates
    labels = np.zeros(tissue.shape, np.uint16)
    white = np.flatnonzero(tissue == BrainTissue.WHITE_MATTER)
    if count and white.size == 0:
        raise ValueError(f"no white matter to hold lesions in volume shape {tissue.shape}")
    lesions: list[Lesion] = []
    centres: list[tuple[np.ndarray, float]] = []
    attempts = 0
    while len(lesions) < count:
        attempts += 1
        if attempts > 200 * max(count, 1):
            raise ValueError(f"could not place {count} lesions in volume shape {tissue.shape}")
        k, j, i = np.unravel_index(int(rng.choice(white)), tissue.shape)
        centre = np.array(
            [np.broadcast_to(axis, tissue.shape)[k, j, i] for axis in (x, y, z)], float
        )
        radius = float(rng.uniform(*radius_range_mm))
        if any(np.linalg.norm(centre - c) < radius + r + 4.0 for c, r in centres):
            continue
        blobs = [(centre, radius)]
        for _ in range(int(rng.integers(0, 3))):
            offset = rng.normal(size=3)
            offset *= 0.8 * radius / np.linalg.norm(offset)
            blobs.append((centre + offset, radius * float(rng.uniform(0.5, 0.8))))
        inside = np.zeros(tissue.shape, bool)
        for blob_centre, blob_radius in blobs:
            inside |= _ellipsoid(x, y, z, tuple(blob_centre), (blob_radius,) * 3) < 1
        inside &= tissue == BrainTissue.WHITE_MATTER
        if np.count_nonzero(inside) < 3:
            continue
        label = len(lesions) + 1
        labels[inside] = label
        tissue[inside] = BrainTissue.LESION
        centres.append((centre, radius))
        lesions.append(_lesion(label, inside, geometry))
    return labels, lesions


@dataclass(frozen=True)
class LesionSpec:
    """A spherical lesion requested at a given place (anatomy coordinates, mm); it takes the
    white matter within ``radius_mm`` of ``centre_mm``."""

    centre_mm: tuple[float, float, float]
    radius_mm: float

    def __post_init__(self) -> None:
        if not 1.0 <= self.radius_mm <= 30.0:
            raise ValueError(f"radius_mm must lie in 1–30 mm, got {self.radius_mm}")


def paint_lesions(
    specs: Sequence[LesionSpec],
    tissue: np.ndarray,
    geometry: VolumeGeometry,
    coordinates: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, list[Lesion]]:
    """Paint the given lesions (label ``n`` for ``specs[n - 1]``), like :func:`place_lesions`.

    Raises
    ------
    ValueError
        When a lesion would hold fewer than 3 white-matter voxels.
    """
    x, y, z = coordinates
    labels = np.zeros(tissue.shape, np.uint16)
    lesions = []
    for label, spec in enumerate(specs, start=1):
        inside = _ellipsoid(x, y, z, spec.centre_mm, (spec.radius_mm,) * 3) < 1
        inside &= tissue == BrainTissue.WHITE_MATTER
        if np.count_nonzero(inside) < 3:
            raise ValueError(f"lesion {label} at {spec.centre_mm} holds no white matter")
        labels[inside] = label
        tissue[inside] = BrainTissue.LESION
        lesions.append(_lesion(label, inside, geometry))
    return labels, lesions


def _lesion(label: int, mask: np.ndarray, geometry: VolumeGeometry) -> Lesion:
    k, j, i = (float(values.mean()) for values in np.nonzero(mask))
    count = int(np.count_nonzero(mask))
    return Lesion(
        label=label,
        centre_mm=geometry.index_to_patient(i, j, k),
        centre_index=(i, j, k),
        voxel_count=count,
        volume_ml=count * geometry.voxel_volume_mm3 / 1000.0,
    )


def _blur(volume: np.ndarray, axis: int) -> np.ndarray:
    """[1, 2, 1] / 4 smoothing along one axis, edges repeated."""
    padded = np.concatenate(
        [volume.take([0], axis=axis), volume, volume.take([-1], axis=axis)], axis=axis
    )
    n = volume.shape[axis]
    return (
        padded.take(range(0, n), axis=axis) + 2 * volume + padded.take(range(2, n + 2), axis=axis)
    ) / np.float32(4)


def render_sequence(
    sequence: MRSequence,
    tissue: np.ndarray,
    coordinates: tuple[np.ndarray, np.ndarray, np.ndarray],
    texture: np.ndarray,
    rng: np.random.Generator,
    noise: float,
) -> np.ndarray:
    """Return the uint16 image of one contrast: tissue signal, texture, bias field, Rician noise.

    ``texture`` is a relative modulation shared by the sequences (see :func:`tissue_texture`).
    """
    x, y, z = coordinates
    signal = np.asarray(_SIGNAL[sequence], np.float32)[tissue] * texture
    signal = _blur(_blur(signal, 1), 2)
    a, b, c = rng.uniform(-0.08, 0.08, size=3)
    bias = (1 + a * x / 100 + b * y / 100 + c * (z - z.mean()) / 100).astype(np.float32)
    signal *= bias
    real = signal + rng.normal(0.0, noise, size=signal.shape).astype(np.float32)
    imaginary = rng.normal(0.0, noise, size=signal.shape).astype(np.float32)
    magnitude = np.sqrt(real**2 + imaginary**2)
    return np.clip(np.rint(magnitude), 0, 4095).astype(np.uint16)


def tissue_texture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Return a smooth multiplicative texture around 1 (about ±3 %)."""
    texture = rng.normal(0.0, 0.06, size=shape).astype(np.float32)
    return 1 + _blur(_blur(_blur(texture, 0), 1), 2)

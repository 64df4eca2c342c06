"""Analytic head phantom for the MR generator: tissue labels, lesions, contrast per sequence."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dicomnode.synthetic.truth import Lesion, VolumeGeometry

__all__ = [
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


def brain_labels(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, scale: float, centre_z: float
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
    """
    xs, ys, zs = x / scale, y / scale, (z - centre_z) / scale
    labels = np.zeros(np.broadcast_shapes(xs.shape, ys.shape, zs.shape), np.uint8)
    origin = (0.0, 0.0, 0.0)
    labels[_ellipsoid(xs, ys, zs, origin, (75, 95, 90)) < 1] = BrainTissue.SCALP
    labels[_ellipsoid(xs, ys, zs, origin, (70, 90, 85)) < 1] = BrainTissue.SKULL
    brain = _ellipsoid(xs, ys, zs, (0, 2, -3), (63, 83, 76))
    labels[brain < 1] = BrainTissue.CSF
    labels[brain < 0.93**2] = BrainTissue.GREY_MATTER
    folds = 1 + 0.06 * np.sin(xs / 4.0) * np.sin(ys / 5.0) * np.cos(zs / 4.5)
    labels[brain * folds**2 < 0.8**2] = BrainTissue.WHITE_MATTER
    for side in (-1.0, 1.0):
        ventricle = _ellipsoid(xs, ys, zs, (9 * side, -5, 8), (6, 22, 11))
        labels[ventricle < 1] = BrainTissue.CSF
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

"""Synthetic breast projections: outline, pectoral muscle, fibroglandular tissue, masses.

Images are built in MONOCHROME2 sense (dense = bright) as float arrays in 12-bit units; the
caller scales to the stored bit depth and inverts for MONOCHROME1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dicomnode.synthetic._breast_domain import (
    BreastTexture,
    MammoVariation,
    MassShape,
    add_calcifications,
    add_skin_line,
    mass_outline,
    texture_propensity,
)
from dicomnode.synthetic.truth import PixelPoint, Projection, View

__all__ = ["BreastShape", "MassPlacement", "RenderedView", "breast_shape", "render_view"]

_BACKGROUND, _FAT, _DENSE, _MASS, _PECTORAL = 40.0, 1250.0, 1050.0, 1500.0, 2300.0


@dataclass(frozen=True)
class BreastShape:
    """Size of one breast in both projections, in mm.

    ``depth``: chest wall to nipple; ``half_height_cc``/``half_height_mlo``: half extent along the
    image columns; ``centre_cc``/``centre_mlo``: row position (mm from the top) of the nipple line.
    """

    depth: float
    half_height_cc: float
    half_height_mlo: float
    centre_cc: float
    centre_mlo: float
    roundness: float = 2.0


@dataclass(frozen=True)
class MassPlacement:
    """A mass in breast coordinates, fractions of the breast size.

    ``d``: distance from the chest wall / depth; ``m``: offset in the CC view / half height;
    ``s``: offset in the MLO view / half height; ``diameter_mm``; ``dome``: exponent of the
    profile across the mass (see :class:`MammoVariation`).
    """

    d: float
    m: float
    s: float
    diameter_mm: float
    shape: MassShape | None = None
    contrast: float = 1.0
    dome: float = 0.0


@dataclass
class RenderedView:
    """One rendered view: float image (12-bit units), dense fraction, regions, calcifications."""

    image: np.ndarray
    fraction: float
    breast: np.ndarray
    pectoral: np.ndarray
    calcifications: list[PixelPoint] = field(default_factory=list)


def breast_shape(rng: np.random.Generator, width_mm: float, height_mm: float) -> BreastShape:
    """Draw the size of a breast that fits an image of ``width_mm`` × ``height_mm``."""
    return BreastShape(
        depth=float(rng.uniform(0.62, 0.78) * width_mm),
        half_height_cc=float(rng.uniform(0.34, 0.42) * height_mm),
        half_height_mlo=float(rng.uniform(0.36, 0.42) * height_mm),
        centre_cc=0.5 * height_mm,
        centre_mlo=0.55 * height_mm,
    )


def _view_coordinates(
    view: View, shape: tuple[int, int], spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from the chest wall (``u``, per column) and from the top (``v``, per row), mm."""
    rows, columns = shape
    column = np.arange(columns, dtype=np.float32)
    u = (columns - 1 - column) * spacing if view.laterality.value == "R" else column * spacing
    v = np.arange(rows, dtype=np.float32) * spacing
    return u[None, :], v[:, None]


def mass_point(
    view: View,
    placement: MassPlacement,
    breast: BreastShape,
    shape: tuple[int, int],
    spacing: float,
) -> PixelPoint:
    """Return the pixel position of a mass in ``view``."""
    u = placement.d * breast.depth
    if view.projection is Projection.CC:
        v = breast.centre_cc + placement.m * breast.half_height_cc
    else:
        v = breast.centre_mlo + placement.s * breast.half_height_mlo
    column = shape[1] - 1 - u / spacing if view.laterality.value == "R" else u / spacing
    return PixelPoint(row=v / spacing, column=float(column))


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Gaussian-filtered white noise (via FFT), normalised to unit standard deviation."""
    noise = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    kernel = np.exp(-2 * (np.pi * sigma_px) ** 2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=shape).astype(np.float32)
    return field / np.float32(field.std() or 1.0)


def render_view(
    view: View,
    breast: BreastShape,
    fraction: float,
    masses: list[MassPlacement],
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing: float,
    noise: float,
    variation: MammoVariation | None = None,
    clusters: tuple[MassPlacement, ...] = (),
) -> RenderedView:
    """Render one view: the float image (12-bit units), its dense-tissue fraction and regions.

    The dense-tissue fraction is measured over the breast without the pectoral muscle.
    ``clusters`` places calcification clusters (their diameter is ignored).
    """
    u, v = _view_coordinates(view, shape, spacing)
    if view.projection is Projection.CC:
        centre, half = breast.centre_cc, breast.half_height_cc
    else:
        centre, half = breast.centre_mlo, breast.half_height_mlo
    if breast.roundness == 2.0:
        radius = np.sqrt((u / breast.depth) ** 2 + ((v - centre) / half) ** 2)
    else:
        p = np.float32(breast.roundness)
        radius = (np.abs(u / breast.depth) ** p + np.abs((v - centre) / half) ** p) ** (1 / p)
    inside = radius < 1.0
    pectoral = np.zeros(shape, bool)
    if view.projection is Projection.MLO:
        size = 1.0 if variation is None else variation.pectoral_scale
        length = 0.6 * size * shape[0] * spacing
        pectoral = u < 0.38 * size * breast.depth * (1 - v / length)
        inside = inside | pectoral
    tissue = inside & ~pectoral
    thickness = np.clip(np.sqrt(np.clip(1 - radius**2, 0, 1)) * 3.0, 0, 1)
    image = np.where(inside, _FAT * (0.55 + 0.45 * thickness), _BACKGROUND).astype(np.float32)
    fine = _smooth_field(rng, shape, 1.5 / spacing)
    coarse = _smooth_field(rng, shape, 6.0 / spacing)
    propensity = coarse + 0.5 * fine + 1.8 * (1 - radius) - 1.2 * (u < 0.08 * breast.depth)
    if variation is not None and variation.texture is not BreastTexture.SMOOTH:
        nipple = (u / breast.depth, (v - centre) / half)
        propensity = texture_propensity(
            variation.texture, rng, shape, spacing, radius, nipple
        ) - 1.2 * (u < 0.08 * breast.depth)
    dense = np.zeros(shape, bool)
    weight = np.zeros(shape, np.float32)
    if fraction > 0 and tissue.any():
        threshold = np.quantile(propensity[tissue], 1 - fraction)
        dense = tissue & (propensity > threshold)
        # Soft edges: the truth is the hard mask, the pixels blend over ±0.15 of propensity.
        weight = np.clip((propensity - threshold) / 0.3 + 0.5, 0, 1) * tissue
    if variation is not None:
        weight = weight * np.float32(variation.dense_gain)
    image += weight * (_DENSE * (0.8 + 0.08 * fine) * (0.6 + 0.4 * thickness))
    image[pectoral] = _PECTORAL + 60 * fine[pectoral]
    image *= 1 + 0.04 * fine * inside
    for placement in masses:
        image += _mass_profile(view, placement, breast, shape, spacing, rng)
    dots = [
        PixelPoint(row=r, column=c)
        for cluster in clusters
        for r, c in add_calcifications(
            image, _point_tuple(view, cluster, breast, shape, spacing), spacing, rng
        )
    ]
    if variation is not None and variation.skin_line:
        add_skin_line(image, inside, int(round(1.0 / spacing)))
    image += rng.standard_normal(shape).astype(np.float32) * np.float32(noise)
    measured = float(dense[tissue].mean()) if tissue.any() else 0.0
    return RenderedView(image, measured, inside, pectoral, dots)


def _point_tuple(
    view: View,
    placement: MassPlacement,
    breast: BreastShape,
    shape: tuple[int, int],
    spacing: float,
) -> tuple[float, float]:
    point = mass_point(view, placement, breast, shape, spacing)
    return point.row, point.column


def _mass_profile(
    view: View,
    placement: MassPlacement,
    breast: BreastShape,
    shape: tuple[int, int],
    spacing: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A lobulated round mass with a soft edge, as an additive float image (a shaped mass is
    thickest at its centre as its ``dome`` says)."""
    point = mass_point(view, placement, breast, shape, spacing)
    rows = np.arange(shape[0], dtype=np.float32)[:, None] - np.float32(point.row)
    columns = np.arange(shape[1], dtype=np.float32)[None, :] - np.float32(point.column)
    radius_px = placement.diameter_mm / 2 / spacing
    if placement.shape is None:
        angle = np.arctan2(rows, columns)
        lobes = 1 + 0.1 * np.sin(5 * angle + rng.uniform(0, 2 * np.pi))
        distance = np.sqrt(rows**2 + columns**2) / (radius_px * lobes)
    else:
        distance = mass_outline(placement.shape, rows, columns, radius_px, rng)
    edge = np.clip((1 - distance) * radius_px / 1.5 + 0.5, 0, 1)
    if placement.dome > 0:
        edge = edge * np.clip(1 - distance**2, 0, 1) ** np.float32(placement.dome)
    return (_MASS * placement.contrast * edge).astype(np.float32)

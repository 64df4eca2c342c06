"""Domain variation of the breast projections: texture models, mass shapes, calcifications.

Used by :func:`dicomnode.synthetic.mg.mammography` when it is given a :class:`MammoVariation`;
without one the generator keeps its original output.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "BreastTexture",
    "MammoVariation",
    "MassShape",
    "add_calcifications",
    "add_skin_line",
    "anisotropic_field",
    "apply_exposure",
    "mass_outline",
    "texture_propensity",
]

_CALCIFICATION = 1300.0


class BreastTexture(enum.StrEnum):
    """Model of the fibroglandular tissue pattern."""

    SMOOTH = "smooth"
    NODULAR = "nodular"
    FIBROUS = "fibrous"
    PATCHY = "patchy"
    DUCTAL = "ductal"


class MassShape(enum.StrEnum):
    """Outline of a mass (BI-RADS shape and margin, simplified)."""

    ROUND = "round"
    OVAL = "oval"
    IRREGULAR = "irregular"
    SPICULATED = "spiculated"


@dataclass(frozen=True)
class MammoVariation:
    """The domain families of a mammogram beyond shape, spacing, bit depth and noise.

    Parameters
    ----------
    breast_scale : float
        Size of both breasts relative to the original draw (0.7–1.15).
    roundness : float
        Super-ellipse exponent of the outline (2: ellipse; 1.6 pointed to 3 boxy).
    texture : BreastTexture or str
        Fibroglandular texture model.
    dense_gain : float
        Brightness of dense tissue relative to the original (0.6–1.3), so that density is a
        pattern, not one global brightness.
    mass_shapes : tuple of MassShape
        Shapes drawn from, one per mass.
    mass_contrast : tuple of float
        Range of the mass signal relative to the original (0.25: faint, 1.2: conspicuous).
    mass_dome : tuple of float
        Range of the exponent ``q`` of the mass profile ``(1 - d²)^q`` (``d``: distance from the
        centre over the radius): 0 is a plate of even thickness, 0.5 the projection of a sphere
        (a real mass is a lump, thickest at its centre); one drawn per mass.
    calcification_clusters : dict of str to int
        Number of calcification clusters (distractors, not masses) per laterality.
    pectoral_scale : float
        Size of the pectoral muscle on MLO relative to the original (0.7–1.4).
    skin_line : bool
        Draw a thin bright skin line along the outline.
    gamma : float
        Exposure / LUT curve applied to the normalised image (1: linear).
    exposure : float
        Gain applied after the curve (0.7–1.1 of the full range).
    voi_lut_function : {"LINEAR", "SIGMOID"}
        VOILUTFunction written; the window is set from the breast's own values.
    """

    breast_scale: float = 1.0
    roundness: float = 2.0
    texture: BreastTexture = BreastTexture.SMOOTH
    dense_gain: float = 1.0
    mass_shapes: tuple[MassShape, ...] = (MassShape.ROUND,)
    mass_contrast: tuple[float, float] = (1.0, 1.0)
    mass_dome: tuple[float, float] = (0.0, 0.0)
    calcification_clusters: tuple[int, int] = (0, 0)
    pectoral_scale: float = 1.0
    skin_line: bool = False
    gamma: float = 1.0
    exposure: float = 1.0
    voi_lut_function: str = "LINEAR"

    def __post_init__(self) -> None:
        object.__setattr__(self, "texture", BreastTexture(self.texture))
        object.__setattr__(self, "mass_shapes", tuple(MassShape(s) for s in self.mass_shapes))
        checks = (
            ("breast_scale", self.breast_scale, 0.5, 1.3),
            ("roundness", self.roundness, 1.2, 4.0),
            ("dense_gain", self.dense_gain, 0.3, 2.0),
            ("pectoral_scale", self.pectoral_scale, 0.3, 2.0),
            ("gamma", self.gamma, 0.3, 3.0),
            ("exposure", self.exposure, 0.3, 1.2),
        )
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
        if not self.mass_shapes:
            raise ValueError("mass_shapes must name at least one MassShape")
        if not 0 < self.mass_contrast[0] <= self.mass_contrast[1]:
            raise ValueError(
                f"mass_contrast must be an increasing positive pair: {self.mass_contrast}"
            )
        if not 0 <= self.mass_dome[0] <= self.mass_dome[1] <= 1:
            raise ValueError(f"mass_dome must be an increasing pair in [0, 1]: {self.mass_dome}")
        if min(self.calcification_clusters) < 0:
            raise ValueError(
                f"calcification_clusters must be >= 0, got {self.calcification_clusters}"
            )
        if self.voi_lut_function not in ("LINEAR", "SIGMOID"):
            raise ValueError(
                f"voi_lut_function must be LINEAR or SIGMOID, got {self.voi_lut_function!r}"
            )


def anisotropic_field(
    rng: np.random.Generator, shape: tuple[int, int], sigma_rows: float, sigma_columns: float
) -> np.ndarray:
    """Gaussian-filtered white noise with its own width per axis, unit standard deviation."""
    noise = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    kernel = np.exp(-2 * np.pi**2 * ((sigma_columns * fx) ** 2 + (sigma_rows * fy) ** 2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=shape).astype(np.float32)
    return field / np.float32(field.std() or 1.0)


def texture_propensity(
    texture: BreastTexture,
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing: float,
    radius: np.ndarray,
    nipple: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Where dense tissue forms first, for a non-smooth texture model (higher: denser).

    ``nipple``: per pixel, the distance from the chest wall over the breast's depth and the
    offset from the nipple line over its half height (both broadcastable to ``shape``); the
    ductal model needs it.
    """
    if texture is BreastTexture.DUCTAL:
        if nipple is None:
            raise ValueError("the ductal texture needs the nipple coordinates")
        return _ductal(rng, shape, spacing, radius, *nipple)
    if texture is BreastTexture.NODULAR:
        blobs = anisotropic_field(rng, shape, 2.5 / spacing, 2.5 / spacing)
        return blobs + 0.8 * (1 - radius)
    if texture is BreastTexture.FIBROUS:
        # Strands run from the chest wall toward the nipple: long along columns, thin along rows.
        strands = anisotropic_field(rng, shape, 0.8 / spacing, 9.0 / spacing)
        return (
            strands
            + 0.4 * anisotropic_field(rng, shape, 6 / spacing, 6 / spacing)
            + (1.2 * (1 - radius))
        )
    if texture is BreastTexture.PATCHY:
        return anisotropic_field(rng, shape, 12 / spacing, 12 / spacing) + 0.6 * (1 - radius)
    raise ValueError(f"texture_propensity does not model {texture}")


def _ductal(
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing: float,
    radius: np.ndarray,
    depth: np.ndarray,
    offset: np.ndarray,
) -> np.ndarray:
    """Lobes drained by ducts that converge on the nipple: a field smooth along each ray from
    the nipple and varying across rays (so strands narrow towards the nipple), with lobules."""
    toward = np.float32(1.0) - depth
    angle = np.arctan2(offset, toward)  # about -pi/2..pi/2 inside the breast
    reach = np.hypot(toward, offset)
    across, along = 512, 64
    polar = anisotropic_field(
        rng, (across, along), float(rng.uniform(3.0, 10.0)), float(rng.uniform(3.0, 10.0))
    )
    rays = ndimage.map_coordinates(
        polar,
        [
            np.broadcast_to((angle + np.pi) / (2 * np.pi) * (across - 1), shape),
            np.broadcast_to(np.clip(reach / 1.5, 0, 1) * (along - 1), shape),
        ],
        order=1,
        mode="grid-wrap",
    )
    lobules = anisotropic_field(rng, shape, 2.0 / spacing, 2.0 / spacing)
    return (
        rays.astype(np.float32)
        + float(rng.uniform(0.3, 0.8)) * lobules
        + float(rng.uniform(0.6, 1.4)) * (1 - radius)
    )


def mass_outline(
    shape: MassShape,
    rows: np.ndarray,
    columns: np.ndarray,
    radius_px: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Normalised distance (1 on the outline) of the pixels around a mass centre."""
    angle = np.arctan2(rows, columns)
    distance = np.sqrt(rows**2 + columns**2)
    if shape is MassShape.OVAL:
        tilt = rng.uniform(0, np.pi)
        ratio = rng.uniform(1.3, 2.0)
        along = columns * np.cos(tilt) + rows * np.sin(tilt)
        across = -columns * np.sin(tilt) + rows * np.cos(tilt)
        return np.sqrt((along / np.sqrt(ratio)) ** 2 + (across * np.sqrt(ratio)) ** 2) / radius_px
    if shape is MassShape.ROUND:
        return distance / (radius_px * (1 + 0.05 * np.sin(3 * angle + rng.uniform(0, 6.3))))
    lobes = 1 + sum(
        rng.uniform(0.05, 0.18) * np.sin(n * angle + rng.uniform(0, 2 * np.pi)) for n in (2, 3, 5)
    )
    outline = distance / (radius_px * lobes)
    if shape is MassShape.SPICULATED:
        count = int(rng.integers(8, 16))
        directions = rng.uniform(0, 2 * np.pi, count)
        for direction in directions:
            offset = np.abs(np.angle(np.exp(1j * (angle - direction))))
            length = rng.uniform(1.6, 2.8)
            width = 0.6 / np.maximum(distance, 1.0)
            spike = (offset < width) & (distance < length * radius_px)
            outline = np.where(spike, np.minimum(outline, 0.95), outline)
    return outline


def add_calcifications(
    image: np.ndarray,
    centre: tuple[float, float],
    spacing: float,
    rng: np.random.Generator,
) -> list[tuple[float, float]]:
    """Add a cluster of 4–15 tiny bright dots around ``centre`` (row, column); return them."""
    rows, columns = image.shape
    dots = []
    for _ in range(int(rng.integers(4, 16))):
        row = centre[0] + rng.normal(0, 3.0 / spacing)
        column = centre[1] + rng.normal(0, 3.0 / spacing)
        r, c = int(round(row)), int(round(column))
        if not (1 <= r < rows - 1 and 1 <= c < columns - 1):
            continue
        size = 1 if rng.random() < 0.6 or spacing > 0.3 else 2
        image[r - size // 2 : r + 1, c - size // 2 : c + 1] += np.float32(
            _CALCIFICATION * rng.uniform(0.5, 1.2)
        )
        dots.append((float(r), float(c)))
    return dots


def add_skin_line(image: np.ndarray, inside: np.ndarray, width_px: int) -> None:
    """Brighten the outermost ``width_px`` pixels of the breast, in place."""
    rim = inside & ~ndimage.binary_erosion(inside, iterations=max(1, width_px))
    image[rim] += np.float32(250.0)


def apply_exposure(image: np.ndarray, gamma: float, exposure: float) -> np.ndarray:
    """A film-like exposure curve on the 12-bit scale: ``4095 · exposure · (x / 4095)^gamma``."""
    unit = np.clip(image / np.float32(4095.0), 0, 1)
    return (np.float32(4095.0 * exposure) * unit ** np.float32(gamma)).astype(np.float32)

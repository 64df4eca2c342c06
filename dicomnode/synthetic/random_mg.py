"""Domain-randomised mammograms: every family of :func:`mammography` drawn per seed.

Training data for the mammography model: detector (matrix, pixel spacing, bits stored,
MONOCHROME1/2, noise, exposure curve, VOI LUT), breast (size, outline, density class, texture
model, among them ducts converging on the nipple, pectoral size, skin line) and findings (masses
5 mm to up to 40 mm, round to spiculated, faint to conspicuous, of even thickness to domed;
calcification clusters as distractors).
"""

from __future__ import annotations

from dataclasses import dataclass

from dicomnode.synthetic._breast_domain import BreastTexture, MammoVariation, MassShape
from dicomnode.synthetic.common import rng_for
from dicomnode.synthetic.mg import Mammogram, mammography

__all__ = ["MammographyDraw", "draw_mammography", "random_mammography"]


@dataclass(frozen=True)
class MammographyDraw:
    """The parameters of one randomised mammogram (arguments of :func:`mammography`)."""

    shape: tuple[int, int]
    pixel_spacing_mm: float
    mass_probability: float
    diameter_range_mm: tuple[float, float]
    bits_stored: int
    photometric: str
    noise: float
    variation: MammoVariation

    def generate(self, seed: int) -> Mammogram:
        """Generate the study of these parameters."""
        return mammography(
            seed,
            shape=self.shape,
            pixel_spacing_mm=self.pixel_spacing_mm,
            mass_probability=self.mass_probability,
            diameter_range_mm=self.diameter_range_mm,
            bits_stored=self.bits_stored,
            photometric=self.photometric,
            noise=self.noise,
            variation=self.variation,
        )


def draw_mammography(seed: int, *, mass_probability: float = 0.5) -> MammographyDraw:
    """Draw the families of one mammogram; ``mass_probability`` is per breast."""
    rng = rng_for(seed, "random", "mg")
    rows = int(rng.choice([384, 448, 512, 640]))
    columns = int(round(rows * float(rng.uniform(0.72, 0.85)) / 16) * 16)
    shapes = [shape for shape in MassShape if rng.random() < 0.6] or [MassShape.ROUND]
    low = float(rng.uniform(0.25, 0.8))
    clusters = int(rng.integers(0, 3)) if rng.random() < 0.5 else 0
    variation = MammoVariation(
        breast_scale=float(rng.uniform(0.75, 1.12)),
        roundness=float(rng.uniform(1.7, 2.8)),
        texture=BreastTexture(rng.choice(list(BreastTexture))),
        dense_gain=float(rng.uniform(0.6, 1.3)),
        mass_shapes=tuple(shapes),
        mass_contrast=(low, low + float(rng.uniform(0.0, 0.5))),
        mass_dome=(0.0, float(rng.uniform(0.0, 0.8))),
        calcification_clusters=(0, clusters),
        pectoral_scale=float(rng.uniform(0.7, 1.4)),
        skin_line=bool(rng.random() < 0.5),
        gamma=float(rng.uniform(0.6, 1.6)),
        exposure=float(rng.uniform(0.75, 1.05)),
        voi_lut_function=str(rng.choice(["LINEAR", "SIGMOID"])),
    )
    return MammographyDraw(
        shape=(rows, columns),
        pixel_spacing_mm=float(rng.uniform(200.0, 300.0)) / rows,
        mass_probability=mass_probability,
        diameter_range_mm=(5.0, float(rng.uniform(12.0, 40.0))),
        bits_stored=int(rng.choice([12, 14, 16])),
        photometric=str(rng.choice(["MONOCHROME1", "MONOCHROME2"])),
        noise=float(rng.uniform(10.0, 40.0)),
        variation=variation,
    )


def random_mammography(seed: int, *, mass_probability: float = 0.5) -> Mammogram:
    """A mammogram with every family drawn from ``seed`` (see :func:`draw_mammography`)."""
    return draw_mammography(seed, mass_probability=mass_probability).generate(seed)

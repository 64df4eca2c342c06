"""Domain randomisation: every scanner, anatomy and nodule family drawn at random per study.

Training on :func:`random_chest_ct` instead of one fixed phantom makes a detector learn nodules
rather than the generator: kernels and noise textures, HU calibration, pixel conventions,
slice thickness (with partial volume), field of view and matrix, body and lung shape,
diaphragm height, nodule kinds, margins and attachments, and vessel trees and airways (every
real chest CT has them) as distractors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dicomnode.synthetic.common import rng_for
from dicomnode.synthetic.ct import ChestCT, NoduleMix, PixelConvention, ReconKernel, chest_ct

__all__ = ["ChestCTDraw", "draw_chest_ct", "random_chest_ct"]

_MATRICES = (256, 320, 384, 512)
_THICKNESSES_MM = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
_PLANE_BUDGET = 60_000_000
"""Most rendered pixels per study (matrix² × slices × sub-planes): ~0.1 s per million."""
_MIX = NoduleMix(
    ground_glass=0.25,
    lobulated=0.25,
    spiculated=0.2,
    juxtapleural=0.2,
    juxtavascular=0.3,
    log_sizes=True,
)
"""Juxtavascular and ground-glass nodules are drawn more often than screening shows them: they
are the detector's hardest cases (a nodule merged with a vessel among the hilar vessels and
bronchi, a faint small ground-glass nodule), so the draw oversamples them."""


@dataclass(frozen=True)
class ChestCTDraw:
    """The drawn parameters of one randomised chest CT (the keywords of :func:`chest_ct`)."""

    shape: tuple[int, int, int]
    pixel_spacing_mm: float
    slice_thickness_mm: float
    kernel: ReconKernel
    noise_hu: float
    hu_offset: float
    pixel_convention: PixelConvention
    padding: bool
    reverse_order: bool
    body_scale: float
    body_aspect: float
    lung_scale: float
    diaphragm_shift_mm: float
    vessels: bool
    n_nodules: int
    part_solid_probability: float = 0.25
    airways: bool = True
    diameter_range_mm: tuple[float, float] = (4.0, 26.0)

    def chest_ct_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`chest_ct` for this domain."""
        kwargs = asdict(self)
        thickness = kwargs.pop("slice_thickness_mm")
        kwargs.update(
            slice_spacing_mm=thickness,
            slice_thickness_mm=thickness,
            partial_volume=True,
            mix=_MIX,
            kernel=self.kernel,
            pixel_convention=self.pixel_convention,
        )
        return kwargs


def draw_chest_ct(seed: int) -> ChestCTDraw:
    """Draw the scanner, anatomy and nodule families of study ``seed``.

    Ranges: body scale 0.82–1.08 (330 mm wide at 1.0), AP/lateral aspect 0.85–1.15, lung size
    0.85–1.1, diaphragm −10…+30 mm; field of view from the body width (≥ 300 mm) to 420 mm,
    matrix 256–512, slice thickness 0.625–5 mm (spacing = thickness, partial volume), z coverage
    220–320 mm within a render budget; kernel none/soft/standard/sharp, noise 6–30 HU, HU offset
    ±20, signed/offset/unsigned pixels, padding outside the scan circle half the time; vessels
    nine times in ten, airways always, 2–6 nodules of 4–26 mm drawn on a log scale (most
    screening nodules are small).
    """
    rng = rng_for(seed, "ct", "domain")
    body_scale = float(rng.uniform(0.82, 1.08))
    field_of_view = float(rng.uniform(max(300.0, 330.0 * body_scale), 420.0))
    thickness = float(_THICKNESSES_MM[int(rng.integers(len(_THICKNESSES_MM)))])
    coverage = float(rng.uniform(220.0, 320.0))
    matrix = int(_MATRICES[int(rng.integers(len(_MATRICES)))])
    slices = max(24, round(coverage / thickness))
    planes = slices * int(np.ceil(thickness))
    while matrix > _MATRICES[0] and matrix**2 * planes > _PLANE_BUDGET:
        matrix = _MATRICES[_MATRICES.index(matrix) - 1]
    while matrix**2 * slices * int(np.ceil(thickness)) > _PLANE_BUDGET:
        slices -= 8
    return ChestCTDraw(
        shape=(matrix, matrix, slices),
        pixel_spacing_mm=round(field_of_view / matrix, 4),
        slice_thickness_mm=thickness,
        kernel=list(ReconKernel)[int(rng.integers(len(ReconKernel)))],
        noise_hu=round(float(rng.uniform(6.0, 30.0)), 2),
        hu_offset=round(float(rng.uniform(-20.0, 20.0)), 1),
        pixel_convention=list(PixelConvention)[int(rng.integers(len(PixelConvention)))],
        padding=bool(rng.random() < 0.5),
        reverse_order=bool(rng.random() < 0.3),
        body_scale=round(body_scale, 3),
        body_aspect=round(float(rng.uniform(0.85, 1.15)), 3),
        lung_scale=round(float(rng.uniform(0.85, 1.1)), 3),
        diaphragm_shift_mm=round(float(rng.uniform(-10.0, 30.0)), 1),
        vessels=bool(rng.random() < 0.9),
        n_nodules=int(rng.integers(2, 7)),
    )


def random_chest_ct(seed: int, domain: ChestCTDraw | None = None) -> ChestCT:
    """A chest CT of study ``seed`` with every family drawn at random (:func:`draw_chest_ct`).

    When the drawn nodules do not fit, fewer are placed (down to one).

    Raises
    ------
    ValueError
        When not even one nodule fits in the drawn anatomy.
    """
    domain = domain or draw_chest_ct(seed)
    kwargs = domain.chest_ct_kwargs()
    requested = kwargs.pop("n_nodules")
    for count in range(requested, 0, -1):
        try:
            return chest_ct(seed, n_nodules=count, **kwargs)
        except ValueError:
            continue
    raise ValueError(f"could not place a nodule in the drawn chest of seed {seed}: {domain}")

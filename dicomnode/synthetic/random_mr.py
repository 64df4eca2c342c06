"""Domain-randomised FLAIR studies: every family of :func:`brain_mr` drawn per seed.

Training data for the brain lesion model: scanner (stored range, RescaleSlope, noise), geometry
(plane, oblique tilt, matrix, spacing, stacking order), anatomy (head size, shape and position,
ventricles, cortex, folding, white-matter extent and heterogeneity, scalp/orbit/skull-base fat)
and lesions (count, size, contrast, site, confluence, irregularity, reach into the cortex, bias
field), grey-white contrast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dicomnode.synthetic._brain import BrainAnatomy
from dicomnode.synthetic._brain_domain import FlairVariation, LesionPlacement, Orientation
from dicomnode.synthetic.common import rng_for
from dicomnode.synthetic.mr import BrainMR, brain_mr

__all__ = ["BrainMRDraw", "draw_brain_anatomy", "draw_brain_mr", "random_brain_mr"]

_MAX_VALUES = (1000, 2000, 4095, 4000, 30000)


@dataclass(frozen=True)
class BrainMRDraw:
    """The parameters of one randomised FLAIR study (arguments of :func:`brain_mr`)."""

    shape: tuple[int, int, int]
    pixel_spacing_mm: float
    slice_spacing_mm: float
    n_lesions: int
    radius_range_mm: tuple[float, float]
    noise: float
    reverse_order: bool
    variation: FlairVariation

    def generate(self, seed: int) -> BrainMR:
        """Generate the study of these parameters."""
        return brain_mr(
            seed,
            shape=self.shape,
            pixel_spacing_mm=self.pixel_spacing_mm,
            slice_spacing_mm=self.slice_spacing_mm,
            n_lesions=self.n_lesions,
            radius_range_mm=self.radius_range_mm,
            noise=self.noise,
            reverse_order=self.reverse_order,
            variation=self.variation,
        )


def draw_brain_mr(seed: int, *, max_voxels: int = 6_000_000) -> BrainMRDraw:
    """Draw the families of one FLAIR study.

    Parameters
    ----------
    seed : int
        Same seed, same draw.
    max_voxels : int
        Cap on the matrix size; thicker slices are drawn when the draw exceeds it.
    """
    rng = rng_for(seed, "random", "mr")
    orientation = Orientation(rng.choice(list(Orientation), p=[0.6, 0.2, 0.2]))
    tilt = float(rng.uniform(-15, 15)) if rng.random() < 0.5 else 0.0
    pixel = float(rng.uniform(0.9, 1.5))
    spacing = float(rng.uniform(1.0, 5.0))
    side = int(round(float(rng.uniform(200, 240)) / pixel))
    coverage = float(rng.uniform(130, 170))
    spacing = max(spacing, coverage * side * side / max_voxels)
    slices = max(8, int(round(coverage / spacing)))
    low = float(rng.uniform(0.08, 0.6))
    sites = [place for place in LesionPlacement if rng.random() < 0.6] or [LesionPlacement.ANYWHERE]
    # Drawn on their own stream: the other families of a seed stay as they were.
    tissue_rng = rng_for(seed, "random", "mr", "cortex")
    variation = FlairVariation(
        bias_range=float(rng.uniform(0.0, 0.4)),
        lesion_contrast=(low, min(1.5, low * float(rng.uniform(1.0, 2.0)))),
        placements=tuple(sites),
        confluent_probability=float(rng.uniform(0.0, 0.5)),
        irregularity=float(rng.uniform(0.0, 0.5)),
        fat=bool(rng.random() < 0.85),
        head_scale=float(rng.uniform(0.85, 1.1)),
        orientation=orientation,
        tilt_deg=tilt,
        max_value=int(rng.choice(_MAX_VALUES)),
        rescale_slope=1.0 if rng.random() < 0.7 else round(float(rng.uniform(0.5, 4.0)), 3),
        anatomy=draw_brain_anatomy(rng_for(seed, "random", "mr", "anatomy")),
        cortical_probability=float(tissue_rng.uniform(0.0, 0.6)),
        grey_white_ratio=float(tissue_rng.uniform(1.0, 1.35)),
    )
    return BrainMRDraw(
        shape=(side, side, slices),
        pixel_spacing_mm=pixel,
        slice_spacing_mm=spacing,
        n_lesions=int(rng.integers(0, 9)),
        radius_range_mm=(1.5, float(rng.uniform(3.0, 7.5))),
        noise=float(rng.uniform(4.0, 25.0)),
        reverse_order=bool(rng.random() < 0.3),
        variation=variation,
    )


def draw_brain_anatomy(rng: np.random.Generator) -> BrainAnatomy:
    """Draw the shape of one brain, within what adult FLAIR shows.

    Head shape: cephalic index about 70-90 (each axis +-8 %); head position in the coil: nodding
    up to +-15 degrees, rolled +-8, turned +-10. Atrophy: sulcal CSF widened (grey-matter surface
    0.86-0.95 of the brain's ellipsoid) and lateral ventricles from slit-like to about twice as
    wide (Evans index about 0.2 to over 0.3), with frontal and occipital horns and a mild
    left-right asymmetry. Cortex and folding: grey-matter band 0.07-0.16 of the radius, gyri
    0.7-1.4x the original size and folds half to over twice as deep. White matter: smooth
    regions up to 2-25 % brighter or darker (corticospinal tracts, periventricular caps and
    bands, and what a bias correction leaves at the brain's edges, strongest at 3 T), the size
    of a faint lesion's contrast, so that smoothly brighter white matter without an edge is seen
    as normal.
    """
    outer = float(rng.uniform(0.86, 0.95))
    return BrainAnatomy(
        aspect=tuple(float(v) for v in rng.uniform(0.92, 1.08, 3)),  # type: ignore[arg-type]
        rotation_deg=(
            float(rng.uniform(-15, 15)),
            float(rng.uniform(-8, 8)),
            float(rng.uniform(-10, 10)),
        ),
        brain_extent=outer,
        white_extent=outer - float(rng.uniform(0.07, 0.16)),
        fold_depth=float(rng.uniform(0.03, 0.14)),
        fold_wavelength=float(rng.uniform(0.7, 1.4)),
        fold_phase=tuple(float(v) for v in rng.uniform(0, 2 * math.pi, 3)),  # type: ignore[arg-type]
        ventricle_size=(
            float(rng.uniform(0.6, 2.0)),
            float(rng.uniform(0.85, 1.25)),
            float(rng.uniform(0.7, 1.5)),
        ),
        ventricle_asymmetry=float(rng.uniform(-0.2, 0.2)),
        horns=float(rng.uniform(0.4, 1.0)) if rng.random() < 0.7 else 0.0,
        white_heterogeneity=float(rng.uniform(0.02, 0.25)),
    )


def random_brain_mr(seed: int, *, max_voxels: int = 6_000_000) -> BrainMR:
    """A FLAIR study with every family drawn from ``seed`` (see :func:`draw_brain_mr`).

    The draw is in ``BrainMR.variation`` (the domain families) and reproducible with
    :func:`draw_brain_mr`.
    """
    return draw_brain_mr(seed, max_voxels=max_voxels).generate(seed)

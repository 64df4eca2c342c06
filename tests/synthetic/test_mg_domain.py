"""Domain-randomised mammography: pectoral muscle, calcifications, mass contrast, random draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dicomnode.synthetic import (
    MammoVariation,
    View,
    draw_mammography,
    mammography,
    random_mammography,
)
from dicomnode.synthetic._breast_domain import BreastTexture, texture_propensity

_SHAPE = (192, 160)


def test_mlo_views_have_a_pectoral_region_at_the_chest_wall() -> None:
    study = mammography(2, shape=_SHAPE, masses={}, variation=MammoVariation(pectoral_scale=1.2))
    columns = _SHAPE[1]
    for view in (View.RCC, View.LCC):
        assert not study.pectoral_masks[view].any()
    for view, chest_wall_right in ((View.RMLO, True), (View.LMLO, False)):
        pectoral = study.pectoral_masks[view]
        assert pectoral.sum() > 0.02 * pectoral.size
        mean_column = np.nonzero(pectoral)[1].mean()
        assert bool(mean_column > columns / 2) == chest_wall_right
        pixels = study.dataset(view).pixel_array.astype(float)
        rest = study.breast_masks[view] & ~pectoral
        assert pixels[pectoral].mean() > pixels[rest].mean()


def test_calcifications_are_not_masses() -> None:
    variation = MammoVariation(calcification_clusters=(2, 2))
    study = mammography(3, shape=_SHAPE, masses={}, variation=variation)
    assert not study.truth.masses
    assert not study.truth.has_mass("L") and not study.truth.has_mass("R")
    for view in study.views:
        dots = study.calcifications[view]
        assert dots
        pixels = study.dataset(view).pixel_array.astype(float)
        bright = [pixels[int(d.row), int(d.column)] for d in dots]
        assert np.median(bright) > np.percentile(pixels[study.breast_masks[view]], 90)


def test_faint_masses_are_fainter() -> None:
    def mass_signal(contrast: float) -> float:
        variation = MammoVariation(mass_contrast=(contrast, contrast), mass_shapes=("oval",))
        study = mammography(4, shape=_SHAPE, masses={"L": 1}, variation=variation)
        clean = mammography(4, shape=_SHAPE, masses={}, variation=variation)
        point = study.truth.masses[0].positions[View.LCC]
        row, column = int(point.row), int(point.column)
        with_mass = study.dataset(View.LCC).pixel_array[row - 1 : row + 2, column - 1 : column + 2]
        without = clean.dataset(View.LCC).pixel_array[row - 1 : row + 2, column - 1 : column + 2]
        return float(with_mass.astype(float).mean() - without.astype(float).mean())

    faint, strong = mass_signal(0.3), mass_signal(1.0)
    assert strong > 0
    assert faint / strong == pytest.approx(0.3, abs=0.1)


def test_domed_masses_are_thickest_at_the_centre() -> None:
    def profile(dome: float) -> tuple[float, float]:
        variation = MammoVariation(mass_dome=(dome, dome), mass_shapes=("round",))
        study = mammography(4, shape=_SHAPE, masses={"L": 1}, variation=variation, noise=0.0)
        clean = mammography(4, shape=_SHAPE, masses={}, variation=variation, noise=0.0)
        mass = study.truth.masses[0]
        point = mass.positions[View.LCC]
        row, column = int(round(point.row)), int(round(point.column))
        radius = mass.diameter_mm / 2 / float(study.dataset(View.LCC).PixelSpacing[0])
        off = int(round(0.7 * radius))
        signal = study.dataset(View.LCC).pixel_array.astype(float)
        signal -= clean.dataset(View.LCC).pixel_array.astype(float)
        return float(signal[row, column]), float(signal[row, column + off])

    flat_centre, flat_rim = profile(0.0)
    dome_centre, dome_rim = profile(0.5)
    assert flat_rim == pytest.approx(flat_centre, rel=0.1)
    assert dome_rim < 0.85 * dome_centre
    assert dome_centre == pytest.approx(flat_centre, rel=0.1)


def _along_minus_across(texture: str, seed: int) -> float:
    """How much better the texture correlates along a ray from the nipple than across rays
    (pairs of points the same distance apart)."""
    size = 201  # chest wall at column 0, nipple at (100, 200); depth = half height = 200 px
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float32)
    depth, offset = columns / 200, (rows - 100) / 200
    field = texture_propensity(
        BreastTexture(texture),
        np.random.default_rng(seed),
        (size, size),
        0.5,
        np.hypot(depth, offset),
        (depth, offset),
    )
    angles = np.linspace(-0.8, 0.8, 400)

    def sample(reach: float, angle: np.ndarray) -> np.ndarray:
        points = [100 + 200 * reach * np.sin(angle), 200 - 200 * reach * np.cos(angle)]
        return ndimage.map_coordinates(field, points, order=1)

    along = np.corrcoef(sample(0.3, angles), sample(0.45, angles))[0, 1]
    across = np.corrcoef(sample(0.375, angles), sample(0.375, angles + 0.4))[0, 1]
    return float(along - across)


def test_ductal_texture_converges_on_the_nipple() -> None:
    ductal = np.mean([_along_minus_across("ductal", seed) for seed in range(8)])
    nodular = np.mean([_along_minus_across("nodular", seed) for seed in range(8)])
    assert ductal > 0.25
    assert abs(nodular) < 0.15  # an isotropic texture: no direction is preferred


def test_random_mammography_is_deterministic_and_varied() -> None:
    assert draw_mammography(5) == draw_mammography(5)
    first, second = random_mammography(5), random_mammography(5)
    assert [ds.PixelData for ds in first.datasets] == [ds.PixelData for ds in second.datasets]
    draws = [draw_mammography(seed) for seed in range(16)]
    assert len({d.variation.texture for d in draws}) >= 3
    assert len({d.photometric for d in draws}) == 2
    assert len({d.bits_stored for d in draws}) >= 2
    assert len({d.variation.mass_shapes for d in draws}) >= 3
    assert len({round(d.pixel_spacing_mm, 4) for d in draws}) == 16


def test_variation_is_validated() -> None:
    with pytest.raises(ValueError, match="gamma"):
        MammoVariation(gamma=5.0)
    with pytest.raises(ValueError, match="mass_contrast"):
        MammoVariation(mass_contrast=(0.8, 0.2))
    with pytest.raises(ValueError):
        MammoVariation(texture="marble")

"""Domain-randomised FLAIR: bias field, lesion contrast, acquisition plane, random draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dicomnode.synthetic import (
    BrainAnatomy,
    BrainMR,
    BrainTissue,
    FlairVariation,
    Orientation,
    brain_mr,
    draw_brain_anatomy,
    draw_brain_mr,
    random_brain_mr,
)

_SMALL = {"shape": (96, 96, 40), "pixel_spacing_mm": 2.0, "slice_spacing_mm": 2.5}


def _flair(study: BrainMR) -> np.ndarray:
    return next(iter(study.volumes.values())).astype(np.float64)


def _lesion_and_surround(study: BrainMR, label: int) -> tuple[float, float]:
    """Mean of the lesion's interior and of the white matter in a shell around it."""
    lesion = study.labels == label
    interior = ndimage.binary_erosion(lesion) if ndimage.binary_erosion(lesion).any() else lesion
    shell = ndimage.binary_dilation(lesion, iterations=3) & ~ndimage.binary_dilation(lesion)
    shell &= study.tissue == BrainTissue.WHITE_MATTER
    volume = _flair(study)
    return float(volume[interior].mean()), float(volume[shell].mean())


def test_bias_field_is_smooth_and_keeps_the_lesions() -> None:
    flat = FlairVariation(fat=True)
    biased = FlairVariation(fat=True, bias_range=0.4)
    plain = brain_mr(3, n_lesions=3, noise=0.0, variation=flat, **_SMALL)  # type: ignore[arg-type]
    field = brain_mr(3, n_lesions=3, noise=0.0, variation=biased, **_SMALL)  # type: ignore[arg-type]
    assert np.array_equal(plain.labels, field.labels)
    head = _flair(plain) > 100
    ratio = np.where(head, _flair(field) / np.maximum(_flair(plain), 1), np.nan)
    assert np.nanmin(ratio) > 0.55 and np.nanmax(ratio) < 1.45
    assert np.nanmax(ratio) - np.nanmin(ratio) > 0.3
    steps = np.abs(np.diff(ratio, axis=2))
    assert np.nanmax(steps) < 0.05  # smooth: no step between neighbouring voxels


def test_faint_lesions_have_the_requested_contrast() -> None:
    variation = FlairVariation(lesion_contrast=(0.10, 0.12))
    study = brain_mr(
        4, n_lesions=3, radius_range_mm=(5.0, 6.0), noise=0.0, variation=variation, **_SMALL
    )  # type: ignore[arg-type]
    for lesion in study.lesions:
        inside, around = _lesion_and_surround(study, lesion.label)
        assert 0.06 < inside / around - 1 < 0.15


def test_lesions_take_the_cortex_only_when_asked() -> None:
    # Tissue depends on the geometry and anatomy only: the lesion-free study has the tissue
    # the lesions replaced.
    healthy = brain_mr(5, n_lesions=0, variation=FlairVariation(), **_SMALL).tissue  # type: ignore[arg-type]
    cortex = healthy == BrainTissue.GREY_MATTER

    def cortex_in_lesions(probability: float) -> int:
        variation = FlairVariation(placements=("juxtacortical",), cortical_probability=probability)
        study = brain_mr(5, n_lesions=4, radius_range_mm=(4.0, 5.0), variation=variation, **_SMALL)  # type: ignore[arg-type]
        return int(np.count_nonzero(study.lesion_mask & cortex))

    assert cortex_in_lesions(0.0) == 0
    assert cortex_in_lesions(1.0) > 0


def test_grey_white_ratio_sets_the_cortex() -> None:
    for ratio in (1.1, 1.35):
        variation = FlairVariation(grey_white_ratio=ratio)
        study = brain_mr(6, n_lesions=0, noise=0.0, variation=variation, **_SMALL)  # type: ignore[arg-type]
        grey, white = (
            float(np.median(_flair(study)[ndimage.binary_erosion(study.tissue == tissue)]))
            for tissue in (BrainTissue.GREY_MATTER, BrainTissue.WHITE_MATTER)
        )
        assert abs(grey / white - ratio) < 0.04


def test_sagittal_orientation_and_aligned_lesions() -> None:
    variation = FlairVariation(orientation="sagittal", lesion_contrast=(0.4, 0.5), fat=True)
    study = brain_mr(5, n_lesions=3, radius_range_mm=(4.0, 6.0), variation=variation, **_SMALL)  # type: ignore[arg-type]
    orientation = [float(v) for v in study.series["FLAIR"][0].ImageOrientationPatient]
    assert orientation == [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    positions = [float(ds.ImagePositionPatient[0]) for ds in study.series["FLAIR"]]
    assert np.allclose(np.diff(positions), -2.5)  # slices step along the patient x axis
    for lesion in study.lesions:
        inside, around = _lesion_and_surround(study, lesion.label)
        assert inside > 1.2 * around


def test_oblique_tilt_and_stored_range() -> None:
    variation = FlairVariation(
        orientation=Orientation.CORONAL, tilt_deg=12.0, max_value=30000, rescale_slope=2.0
    )
    study = brain_mr(6, n_lesions=1, variation=variation, **_SMALL)  # type: ignore[arg-type]
    ds = study.series["FLAIR"][0]
    column = np.asarray([float(v) for v in ds.ImageOrientationPatient[3:]])
    assert np.degrees(np.arccos(abs(column[2]))) == pytest.approx(12.0, abs=0.01)
    assert float(ds.RescaleSlope) == 2.0
    assert ds.BitsStored >= 12 and _flair(study).max() * float(ds.RescaleSlope) > 5000


def test_fat_is_bright_and_not_lesion() -> None:
    study = brain_mr(7, n_lesions=2, variation=FlairVariation(fat=True), **_SMALL)  # type: ignore[arg-type]
    fat = study.tissue == BrainTissue.FAT
    white = study.tissue == BrainTissue.WHITE_MATTER
    assert fat.any() and not (fat & study.lesion_mask).any()
    assert _flair(study)[fat].mean() > 1.25 * _flair(study)[white].mean()


def test_random_brain_mr_is_deterministic_and_varied() -> None:
    assert draw_brain_mr(11) == draw_brain_mr(11)
    first = random_brain_mr(11, max_voxels=400_000)
    second = random_brain_mr(11, max_voxels=400_000)
    assert [ds.PixelData for ds in first.datasets] == [ds.PixelData for ds in second.datasets]
    assert first.variation == draw_brain_mr(11).variation
    draws = [draw_brain_mr(seed) for seed in range(16)]
    assert len({d.variation.orientation for d in draws}) >= 2
    assert len({d.variation.max_value for d in draws}) >= 2
    assert len({d.shape for d in draws}) >= 8
    assert len({d.variation.lesion_contrast for d in draws}) == 16
    assert len({d.variation.grey_white_ratio for d in draws}) == 16
    assert any(d.variation.cortical_probability > 0.3 for d in draws)


def _head(seed: int, anatomy: BrainAnatomy | None = None, noise: float = 12.0) -> BrainMR:
    variation = FlairVariation(anatomy=anatomy)
    return brain_mr(seed, n_lesions=0, noise=noise, variation=variation, **_SMALL)  # type: ignore[arg-type]


def _count(study: BrainMR, tissue: BrainTissue) -> int:
    return int(np.count_nonzero(study.tissue == tissue))


def test_default_anatomy_is_the_original_brain() -> None:
    plain, same = _head(8), _head(8, BrainAnatomy())
    assert np.array_equal(plain.tissue, same.tissue)
    assert np.array_equal(_flair(plain), _flair(same))


def test_anatomy_shapes_ventricles_cortex_and_head() -> None:
    csf, white = BrainTissue.CSF, BrainTissue.WHITE_MATTER
    plain = _head(9)
    atrophy = _head(9, BrainAnatomy(ventricle_size=(2.0, 1.2, 1.4), horns=1.0, brain_extent=0.88))
    assert _count(atrophy, csf) > 1.3 * _count(plain, csf)
    assert _count(_head(9, BrainAnatomy(white_extent=0.7)), white) < 0.8 * _count(plain, white)

    def asymmetry(study: BrainMR) -> float:  # share of scalp voxels without a left-right mirror
        scalp = study.tissue[20] == BrainTissue.SCALP
        return float(np.count_nonzero(scalp != scalp[:, ::-1]) / np.count_nonzero(scalp))

    turned = _head(9, BrainAnatomy(rotation_deg=(0.0, 0.0, 20.0)))
    assert asymmetry(turned) > 0.3 > 0.05 > asymmetry(plain)


def test_white_matter_heterogeneity_is_smooth_and_bounded() -> None:
    plain, varied = _head(10, noise=0.0), _head(10, BrainAnatomy(white_heterogeneity=0.1), 0.0)
    assert np.array_equal(varied.tissue, plain.tissue)
    deep = ndimage.binary_erosion(plain.tissue == BrainTissue.WHITE_MATTER, iterations=2)
    ratio = _flair(varied)[deep] / _flair(plain)[deep]
    assert 0.88 < ratio.min() < 0.97 and 1.03 < ratio.max() < 1.12
    grey = ndimage.binary_erosion(plain.tissue == BrainTissue.GREY_MATTER, iterations=2)
    assert np.array_equal(_flair(varied)[grey], _flair(plain)[grey])


def test_random_anatomy_is_drawn_per_study() -> None:
    anatomies = [draw_brain_mr(seed).variation.anatomy for seed in range(8)]
    assert all(a is not None for a in anatomies)
    assert len({a.ventricle_size for a in anatomies if a is not None}) == 8
    rng = np.random.default_rng(0)
    for _ in range(20):  # every draw is a valid anatomy
        drawn = draw_brain_anatomy(rng)
        assert drawn.white_extent < drawn.brain_extent
        assert 0 < drawn.white_heterogeneity <= 0.25


def test_variation_is_validated() -> None:
    with pytest.raises(ValueError, match="bias_range"):
        FlairVariation(bias_range=1.5)
    with pytest.raises(ValueError, match="tilt_deg"):
        FlairVariation(tilt_deg=40)
    with pytest.raises(ValueError, match="cortical_probability"):
        FlairVariation(cortical_probability=1.5)
    with pytest.raises(ValueError, match="grey_white_ratio"):
        FlairVariation(grey_white_ratio=2.0)
    with pytest.raises(ValueError, match="white_extent"):
        BrainAnatomy(white_extent=0.95, brain_extent=0.9)
    with pytest.raises(ValueError, match="FLAIR-only"):
        brain_mr(1, shape=(32, 32, 8), sequences=("T1",), variation=FlairVariation())

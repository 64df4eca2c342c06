"""Domain-randomised FLAIR: bias field, lesion contrast, acquisition plane, random draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dicomnode.synthetic import (
    BrainMR,
    BrainTissue,
    FlairVariation,
    Orientation,
    brain_mr,
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


def test_variation_is_validated() -> None:
    with pytest.raises(ValueError, match="bias_range"):
        FlairVariation(bias_range=1.5)
    with pytest.raises(ValueError, match="tilt_deg"):
        FlairVariation(tilt_deg=40)
    with pytest.raises(ValueError, match="FLAIR-only"):
        brain_mr(1, shape=(32, 32, 8), sequences=("T1",), variation=FlairVariation())

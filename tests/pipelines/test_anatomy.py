"""The anatomy steps on the synthetic phantoms: lungs (CT), brain (FLAIR), breast (MG)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dicomnode.pipeline import InputRefused
from dicomnode.synthetic import BrainTissue, brain_mr, chest_ct, mammography
from pipelines.brain_lesion.skullstrip import brain_mask, correct_bias, drop_extracerebral_fat
from pipelines.common.dicomio import decode_pixels, volume_from_datasets
from pipelines.common.grid import WorkingGrid, resize, to_working_grid
from pipelines.common.masks import otsu
from pipelines.lung_nodule.lungs import lung_mask
from pipelines.mammo_score.breast import breast_regions, normalise_breast

from .anatomy_helpers import SMALL_CT, juxtapleural_ct


def test_lung_mask_keeps_juxtapleural_nodules_and_leaves_out_the_chest_wall() -> None:
    ct = juxtapleural_ct(21)
    volume = volume_from_datasets(ct.datasets)
    lungs = lung_mask(volume.array, volume.affine())
    centres = np.asarray([n.centre_mm for n in ct.nodules])
    assert np.all(lungs.contains(centres)), lungs.distance_mm(centres)
    # Without the border repair the larger nodule's centre falls in its notch.
    bare = lung_mask(volume.array, volume.affine(), repair_mm=0.0)
    assert not bare.contains(centres[:1], margin_mm=5.0)
    # Chest wall muscle and subcutaneous fat beside each lung, on the nodules' plane.
    x, y, z = ct.nodules[0].centre_mm
    scale = 0.69  # the phantom's size factor at a 240 mm field of view
    wall = [(side * f * scale, -5.0, z) for side in (1, -1) for f in (142.0, 157.0)]
    assert not np.any(lungs.contains(np.asarray(wall), margin_mm=5.0))
    assert 300 < lungs.volume_ml < 3000


def test_lung_mask_holds_every_random_nodule() -> None:
    ct = chest_ct(22, shape=(128, 128, 48), n_nodules=3, diameter_range_mm=(5, 20))
    volume = volume_from_datasets(ct.datasets)
    lungs = lung_mask(volume.array, volume.affine())
    assert np.all(lungs.contains(np.asarray([n.centre_mm for n in ct.nodules])))


def test_ct_without_lungs_is_refused() -> None:
    ct = chest_ct(23, nodules=[], **SMALL_CT)  # type: ignore[arg-type]
    volume = volume_from_datasets(ct.datasets)
    solid = np.where(volume.array < -400, 40.0, volume.array).astype(np.float32)
    with pytest.raises(InputRefused, match="no lungs found"):
        lung_mask(solid, volume.affine())


def _working_labels(grid: WorkingGrid, labels: np.ndarray) -> np.ndarray:
    canonical = np.ascontiguousarray(grid.canonical_from_source(labels)).astype(np.float32)
    return resize(torch.from_numpy(canonical), grid.shape, mode="nearest").numpy().astype(int)


@pytest.fixture(scope="module")
def flair() -> tuple[np.ndarray, WorkingGrid, np.ndarray]:
    """A FLAIR in the working grid (1.5 mm, RAS) and its tissue labels there."""
    mr = brain_mr(31, shape=(96, 96, 48), n_lesions=4, radius_range_mm=(3, 6))
    volume = volume_from_datasets(mr.datasets)
    image, grid = to_working_grid(volume, pixdim=(1.5, 1.5, 1.5))
    return image.numpy(), grid, _working_labels(grid, mr.tissue)


def test_brain_mask_holds_the_lesions_and_leaves_out_the_scalp(
    flair: tuple[np.ndarray, WorkingGrid, np.ndarray],
) -> None:
    image, grid, tissue = flair
    brain = brain_mask(image, grid.spacing).brain
    assert brain[tissue == BrainTissue.LESION].all()
    assert brain[tissue == BrainTissue.WHITE_MATTER].all()
    assert brain[tissue == BrainTissue.GREY_MATTER].mean() > 0.99
    assert not brain[tissue == BrainTissue.SCALP].any()
    assert brain[tissue == BrainTissue.SKULL].mean() < 0.01


def test_brain_mask_and_bias_correction_tolerate_a_strong_bias_field(
    flair: tuple[np.ndarray, WorkingGrid, np.ndarray],
) -> None:
    image, grid, tissue = flair
    x = np.linspace(-1.0, 1.0, image.shape[0])[:, None, None]
    z = np.linspace(-1.0, 1.0, image.shape[2])[None, None, :]
    field = (1.0 + 0.35 * x) * (1.0 - 0.2 * z)  # +-35 % left-right, +-20 % head-feet
    biased = (image * field).astype(np.float32)
    brain = brain_mask(biased, grid.spacing).brain
    assert brain[tissue == BrainTissue.LESION].all()
    assert not brain[tissue == BrainTissue.SCALP].any()
    white = tissue == BrainTissue.WHITE_MATTER

    def spread(values: np.ndarray) -> float:
        return float(np.std(values) / np.mean(values))

    corrected = correct_bias(biased, brain, grid.spacing)
    assert spread(corrected[white]) < 0.5 * spread(biased[white])
    assert spread(corrected[white]) < 1.5 * spread(image[white])


def test_fat_against_the_brain_leaves_the_mask_and_lesions_stay(
    flair: tuple[np.ndarray, WorkingGrid, np.ndarray],
) -> None:
    # Orbital fat lying against the brain with no dark bridge between them (skull stripping
    # keeps it): a bright blob astride the mask's edge, as bright as the brightest lesion.
    image, grid, tissue = flair
    brain = brain_mask(image, grid.spacing).brain
    untouched = drop_extracerebral_fat(image, brain, grid.spacing)
    assert brain[tissue == BrainTissue.GREY_MATTER].mean() > 0.99
    assert (brain & ~untouched).sum() < 0.01 * brain.sum()
    assert untouched[tissue == BrainTissue.LESION].all()
    edge = brain & ~np.roll(brain, -4, axis=1)  # the front edge (anterior: -y in RAS)
    edge[:, :, : image.shape[2] // 2] = False
    centre = np.argwhere(edge)[len(np.argwhere(edge)) // 2]
    index = np.indices(image.shape)
    distance = np.sqrt(
        sum(((index[a] - centre[a]) * grid.spacing[a]) ** 2 for a in range(3))  # mm
    )
    fat = (distance < 7.0) & (tissue != BrainTissue.LESION)
    bright = float(np.max(image[tissue == BrainTissue.LESION]))
    with_fat = np.where(fat, bright, image).astype(np.float32)
    kept = drop_extracerebral_fat(with_fat, brain | fat, grid.spacing)
    assert kept[fat].mean() < 0.05
    assert kept[tissue == BrainTissue.LESION].all()


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_breast_mask_leaves_out_the_background_and_finds_the_pectoral_muscle(
    photometric: str,
) -> None:
    # Fatty breasts: the muscle is clearly brighter than the breast (in dense ones it is not).
    mg = mammography(32, masses={"L": 1}, photometric=photometric, density="A")
    for ds in mg.datasets:
        pixels = decode_pixels(ds).astype(np.float32)
        if photometric == "MONOCHROME1":
            pixels = pixels.max() - pixels
        if ds.ImageLaterality == "R":  # chest wall to the left, as view_tensor turns it
            pixels = pixels[:, ::-1]
        regions = breast_regions(pixels, mlo=ds.ViewPosition == "MLO")
        background = pixels < 0.1 * np.percentile(pixels, 99)
        assert background.mean() > 0.2
        assert not (regions.breast & background).any()
        assert regions.breast[~background].mean() > 0.98
        normalised = normalise_breast(pixels, regions)
        assert np.all(normalised[~regions.breast] == 0)
        if ds.ViewPosition == "CC":
            assert not regions.pectoral.any()
            continue
        # The muscle: a triangle at the top of the chest wall, brighter than the breast.
        rows, columns = pixels.shape
        assert regions.pectoral[0, 0] and not regions.pectoral[-1, 0]
        assert not regions.pectoral[:, columns // 2 :].any()
        assert 0.03 < regions.pectoral.sum() / regions.breast.sum() < 0.3
        tissue = np.median(pixels[regions.tissue])
        assert np.median(pixels[regions.pectoral]) > 1.3 * tissue


def test_breast_mask_keeps_dark_fat_beside_bright_glands() -> None:
    # A fatty periphery much darker than the glands: Otsu's threshold alone falls between the
    # two tissues and would drop the fat.
    rows, columns = np.mgrid[0:200, 0:160].astype(np.float32)
    radius = np.hypot(columns / 120, (rows - 100) / 80)
    image = np.where(radius < 1, 0.25, 0.03).astype(np.float32)
    glands = radius < 0.75
    image[glands] = 0.55
    image += np.random.default_rng(0).normal(0, 0.005, image.shape).astype(np.float32)
    regions = breast_regions(image, mlo=False)
    assert regions.breast[radius < 0.97].all()
    assert not regions.breast[radius > 1.03].any()
    normalised = normalise_breast(image, regions)
    fat, dense = np.median(normalised[~glands & regions.breast]), np.median(normalised[glands])
    assert 0 < fat < dense  # the fat stays apart from the background (0)


def _mlo(*, top_row: int, glands: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 300 x 240 MLO-like view, chest wall on the left, and its true pectoral muscle.

    The breast's outline starts ``top_row`` rows below the image's top and clips the muscle
    there; the muscle brightens downwards (thicker) and narrows to its apex at 60 % of the rows;
    ``glands`` is the brightness of the parenchyma, 0.45 (fatty: 0.25) up to the muscle's own.
    """
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:300, 0:240].astype(np.float32)
    radius = np.hypot(columns / 200, (rows - 160) / (160 - 0.6 * top_row))
    breast = (radius < 1) & (rows >= top_row)
    muscle = breast & (columns < 75 * (1 - rows / 180))
    thickness = np.sqrt(np.clip(1 - radius**2, 0, 1))
    image = np.where(breast, 0.25 + 0.1 * thickness, 0.02).astype(np.float32)
    blobs = np.asarray(
        torch.nn.functional.interpolate(
            torch.from_numpy(rng.random((1, 1, 30, 24), np.float32)),
            size=(300, 240),
            mode="bilinear",
        )[0, 0]
    )
    image = np.where(breast & (blobs > 0.55), glands, image)
    image = np.where(muscle, 0.55 + 0.2 * rows / 180, image)
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    return image, muscle


@pytest.mark.parametrize(
    ("top_row", "glands"), [(0, 0.45), (30, 0.45), (30, 0.6), (0, 0.6)], ids=str
)
def test_pectoral_muscle_found_when_clipped_at_the_top_and_beside_dense_tissue(
    top_row: int, glands: float
) -> None:
    # What the first detector missed on half of an independent family's MLOs: the muscle
    # brightening downwards, clipped by the breast's outline at the top, dense tissue beside it.
    for seed in range(3):
        image, muscle = _mlo(top_row=top_row, glands=glands, seed=seed)
        found = breast_regions(image, mlo=True).pectoral
        overlap = (found & muscle).sum() / (found | muscle).sum()
        assert overlap > 0.85, (seed, overlap)


def test_no_pectoral_muscle_is_invented_on_an_mlo_without_one() -> None:
    for seed in range(3):
        image, muscle = _mlo(top_row=0, glands=0.45, seed=seed)
        image[muscle] = 0.3  # the muscle out of the field: fat at the chest wall
        assert not breast_regions(image, mlo=True).pectoral.any()


def test_otsu_splits_a_gap_in_the_middle() -> None:
    # Nothing between a dark and a bright class: every split in the gap is as good; the first
    # of them sat on the dark class's upper tail (a breast mask let half the background in).
    rng = np.random.default_rng(0)
    dark, bright = rng.normal(0.02, 0.004, 4000), rng.normal(0.5, 0.01, 6000)
    threshold = otsu(np.concatenate([dark, bright]))
    assert abs(threshold - (dark.max() + bright.min()) / 2) < 0.01
    # Without a gap it is Otsu's split, unchanged.
    assert abs(otsu(np.concatenate([rng.normal(0, 1, 5000), rng.normal(6, 1, 5000)])) - 3) < 0.3

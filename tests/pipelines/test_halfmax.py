"""The half-maximum extent of a lesion: recovers an under-segmented lesion, grows at most
``GROWTH_VOXELS``, keeps a lesion with nothing above its level."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pipelines.brain_lesion.halfmax import GROWTH_VOXELS, Visit, refine


def _ball(shape: tuple[int, int, int], centre: tuple[int, int, int], radius: float) -> np.ndarray:
    k, j, i = np.indices(shape)
    return (k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2 <= radius**2


def test_under_segmented_lesion_recovered_and_growth_bounded() -> None:
    rng = np.random.default_rng(3)
    shape = (40, 64, 64)
    brain = _ball(shape, (20, 32, 32), 30)
    image = np.where(brain, 1000.0, 50.0) + rng.normal(0, 30, shape)
    lesion = _ball(shape, (20, 32, 20), 6)
    image[lesion] += 900.0  # 1.9x the brain
    sheet = np.zeros(shape, bool)
    sheet[10:30, 45:60, 40:42] = True  # a bright band the size of a sulcus
    image[sheet] += 900.0
    core = lesion & (ndimage.distance_transform_edt(lesion) > 2)
    seed = np.zeros(shape, bool)
    seed[18:21, 50:53, 40:42] = True  # the network caught a corner of the band
    refined = refine(Visit(image, brain), core | seed)
    labels, _ = ndimage.label(refined)
    grown_lesion = refined & ndimage.binary_dilation(lesion, iterations=1)
    assert core.sum() < lesion.sum() / 2
    assert abs(int(grown_lesion.sum()) - int(lesion.sum())) <= 0.1 * lesion.sum()
    reach = ndimage.binary_dilation(seed, iterations=GROWTH_VOXELS)
    band = refined & ~ndimage.binary_dilation(lesion, iterations=1)
    assert band.any() and not (band & ~reach).any()
    assert band.sum() < sheet.sum() / 2


def test_nothing_above_level_keeps_the_mask() -> None:
    shape = (10, 10, 10)
    brain = np.ones(shape, bool)
    image = np.full(shape, 100.0)
    mask = np.zeros(shape, bool)
    mask[4:6, 4:6, 4:6] = True
    assert (refine(Visit(image, brain), mask) == mask).all()

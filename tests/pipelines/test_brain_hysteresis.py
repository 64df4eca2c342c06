"""The brain pipeline's lesions from the network's probabilities: hysteresis and minimum size."""

from __future__ import annotations

import numpy as np

from pipelines.brain_lesion.pipeline import EXTENT_THRESHOLD, VOXEL_THRESHOLD, network_lesions


def _map() -> np.ndarray:
    probability = np.zeros((20, 20, 20))
    probability[3:6, 3:6, 3:6] = 0.4  # a lesion the network is sure of at its core only
    probability[4, 4, 4] = 0.58
    probability[12:15, 12:15, 12:15] = 0.45  # as wide, no voxel over the decision boundary
    probability[16, 2, 2] = 0.6  # sure, but one voxel: not a lesion
    return probability


def test_a_seeded_lesion_is_taken_at_its_extent() -> None:
    assert EXTENT_THRESHOLD < 0.4 < 0.45 < VOXEL_THRESHOLD < 0.58
    extent, found = network_lesions(_map(), np.ones((20, 20, 20), bool), min_voxels=5)
    assert extent[3:6, 3:6, 3:6].all() and int(extent.sum()) == 27
    assert int(found.sum()) == 1 and found[4, 4, 4]


def test_no_lesion_without_a_sure_voxel_or_outside_the_brain() -> None:
    brain = np.ones((20, 20, 20), bool)
    brain[:8] = False
    extent, found = network_lesions(_map(), brain, min_voxels=5)
    assert not extent.any() and not found.any()

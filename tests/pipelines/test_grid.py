"""Orientation, resampling and index mapping between DICOM volumes and working grids."""

from __future__ import annotations

import numpy as np
import pytest

from dicomnode.synthetic import chest_ct
from pipelines.common.components import connected_components
from pipelines.common.dicomio import volume_from_datasets
from pipelines.common.grid import to_working_grid


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axcodes", ["RAS", "LPS"])
def test_patient_points_round_trip(reverse: bool, axcodes: str) -> None:
    ct = chest_ct(
        41,
        shape=(64, 64, 24),
        n_nodules=1,
        diameter_range_mm=(10, 14),
        part_solid_probability=0.0,
        reverse_order=reverse,
    )
    volume = volume_from_datasets(list(reversed(ct.datasets)))
    tensor, grid = to_working_grid(volume, axcodes=axcodes, pixdim=(2.0, 2.0, 3.0))
    nodule = ct.nodules[0]
    working = grid.from_patient(np.asarray([nodule.centre_mm]))
    assert np.allclose(grid.to_patient(working)[0], nodule.centre_mm, atol=1e-6)
    index = tuple(int(round(v)) for v in working[0])
    assert float(tensor[index]) > -500  # nodule (partial volume), not lung (about -850 HU)
    restored = grid.source_from_canonical(grid.canonical_from_source(volume.array))
    assert np.array_equal(restored, volume.array)


def test_connected_components() -> None:
    mask = np.zeros((10, 10, 10), bool)
    mask[1:3, 1:3, 1:3] = True
    mask[6:9, 6:9, 6:9] = True
    mask[0, 9, 9] = True
    labels, found = connected_components(mask, min_voxels=2)
    assert [c.voxels for c in found] == [27, 8]
    assert np.allclose(found[0].centroid, (7, 7, 7))
    assert labels[7, 7, 7] == 1 and labels[1, 1, 1] == 2 and labels[0, 9, 9] == 0

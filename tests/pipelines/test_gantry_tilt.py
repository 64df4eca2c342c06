"""A CT acquired with a tilted gantry: tilted planes whose positions step along the table."""

from __future__ import annotations

import math

import numpy as np

from dicomnode.synthetic import chest_ct
from pipelines.common.dicomio import volume_from_datasets


def test_each_slice_maps_to_its_own_position() -> None:
    """15 degrees of tilt over 20 slices of 2.5 mm: the slice axis of the affine is the step
    between positions (along the table), not the plane normal (which would put the last slice
    12.3 mm off)."""
    datasets = chest_ct(41, shape=(40, 40, 20), n_nodules=0).datasets
    tilt = math.radians(15)
    first = np.asarray(datasets[0].ImagePositionPatient, float)
    for k, ds in enumerate(sorted(datasets, key=lambda d: float(d.ImagePositionPatient[2]))):
        ds.ImageOrientationPatient = [1, 0, 0, 0, math.cos(tilt), -math.sin(tilt)]
        ds.ImagePositionPatient = list(first + [0.0, 0.0, 2.5 * k])
    volume = volume_from_datasets(datasets)
    affine = volume.affine()
    for k, position in enumerate(volume.geometry.positions):
        np.testing.assert_allclose(affine @ [0, 0, k, 1], [*position, 1], atol=1e-6)
    # the planes are 2.5 mm apart along the table, cos(15) x 2.5 mm along their normal
    assert math.isclose(volume.slice_spacing, 2.5 * math.cos(tilt), rel_tol=1e-6)

"""A series with a localizer or a few images in another plane: the main stack is analysed.

Scanners put the scout that planned a scan into its series, and archives merge series; the
images outside the main stack are left out, a series of several comparable stacks is refused.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicomnode.pipeline import InputRefused
from dicomnode.results.sources import main_stack
from dicomnode.synthetic import chest_ct
from pipelines.common.dicomio import check_geometry, volume_from_datasets


def _series() -> list[Dataset]:
    return chest_ct(31, shape=(40, 40, 20), n_nodules=0).datasets


def _in_plane(source: Dataset, n: int, orientation: list[int], localizer: bool) -> Dataset:
    ds = copy.deepcopy(source)
    ds.SOPInstanceUID = f"{source.SOPInstanceUID}.9{n}"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER" if localizer else "AXIAL"]
    ds.InstanceNumber = 900 + n
    ds.ImageOrientationPatient = orientation
    return ds


@pytest.mark.parametrize("localizer", [True, False], ids=["marked", "unmarked"])
def test_two_sagittal_images_are_left_out(
    localizer: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Marked LOCALIZER or not (2 of 22 images): the volume is the one of the axial stack,
    and the decode says once that 2 images were left out."""
    clean = _series()
    expected = volume_from_datasets(clean)
    extra = [_in_plane(ds, n, [0, 1, 0, 0, 0, -1], localizer) for n, ds in enumerate(clean[:2])]
    mixed = extra + clean[5:] + clean[:5]
    with caplog.at_level(logging.INFO, logger="pipelines.common.dicomio"):
        check_geometry(mixed)  # a pipeline's header check, before the decode
        volume = volume_from_datasets(mixed)
    said = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert said == ["volume: 2 image(s) outside the main stack left out (localizers)"]
    assert volume.geometry.sop_instance_uids == expected.geometry.sop_instance_uids
    np.testing.assert_array_equal(volume.array, expected.array)
    assert len(main_stack(mixed)) == len(clean)


def test_a_marked_localizer_is_left_out_of_a_small_series() -> None:
    """Image Type LOCALIZER is enough, whatever the share: 2 coronal scouts beside 5 slices."""
    clean = _series()[:5]
    scouts = [_in_plane(ds, n, [1, 0, 0, 0, 0, -1], True) for n, ds in enumerate(clean[:2])]
    geometry = check_geometry(scouts + clean)
    assert len(geometry.sop_instance_uids) == 5


def test_three_plane_series_is_refused() -> None:
    """A three-plane localizer series: no stack holds most of the images."""
    series = _series()[:8]
    series += [_in_plane(ds, n, [0, 1, 0, 0, 0, -1], False) for n, ds in enumerate(series[:6])]
    series += [_in_plane(ds, 10 + n, [1, 0, 0, 0, 0, -1], False) for n, ds in enumerate(series[:6])]
    with pytest.raises(InputRefused, match="images of several orientations"):
        check_geometry(series)


def test_alternating_orientations_are_refused() -> None:
    series = _series()
    for ds in series[::2]:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    with pytest.raises(InputRefused, match="images of several orientations"):
        check_geometry(series)


def test_orientations_a_rounding_apart_are_one_stack() -> None:
    """Scanners write direction cosines with float noise: 0.00049 and 0.00051 are one plane."""
    clean = _series()
    for n, ds in enumerate(clean):
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0.00049 if n % 2 else 0.00051]
    scouts = [_in_plane(ds, n, [0, 1, 0, 0, 0, -1], True) for n, ds in enumerate(clean[:2])]
    assert len(check_geometry(scouts + clean).sop_instance_uids) == len(clean)

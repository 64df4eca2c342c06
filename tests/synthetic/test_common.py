"""UIDs, random streams, geometry and writing files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnode.synthetic import ChestCT, synthetic_uid, write_study
from dicomnode.synthetic.common import axial_geometry, rng_for
from dicomnode.synthetic.truth import DensityClass


def test_uid_is_repeatable_valid_and_role_specific() -> None:
    uid = synthetic_uid(7, "ct", "series")
    assert uid == synthetic_uid(7, "ct", "series")
    assert uid != synthetic_uid(8, "ct", "series")
    assert uid != synthetic_uid(7, "ct", "study")
    assert uid.startswith("2.25.") and len(uid) <= 64
    assert pydicom.uid.UID(uid).is_valid


def test_random_streams_are_repeatable_and_independent() -> None:
    first = rng_for(1, "noise").random(4)
    assert np.array_equal(first, rng_for(1, "noise").random(4))
    assert not np.array_equal(first, rng_for(1, "texture").random(4))


@pytest.mark.parametrize("reverse", [False, True])
def test_geometry_index_patient_round_trip(reverse: bool) -> None:
    geometry = axial_geometry(
        (10, 20, 30),
        pixel_spacing_mm=0.8,
        slice_spacing_mm=2.0,
        slice_thickness_mm=2.0,
        centre_mm=(1.0, 2.0, 3.0),
        reverse_order=reverse,
    )
    x, y, z = geometry.index_to_patient(14.5, 9.5, 4.5)
    assert (x, y, z) == pytest.approx((1.0, 2.0, 3.0))
    assert geometry.patient_to_index(x, y, z) == pytest.approx((14.5, 9.5, 4.5))
    step = geometry.slice_position(1)[2] - geometry.slice_position(0)[2]
    assert step == pytest.approx(-2.0 if reverse else 2.0)


def test_density_class_from_fraction() -> None:
    assert [DensityClass.from_fraction(f).value for f in (0.0, 0.3, 0.6, 0.9, 1.0)] == list("ABCDD")
    with pytest.raises(ValueError, match="fibroglandular fraction"):
        DensityClass.from_fraction(1.5)


def test_write_study_file_format(tmp_path: Path, ct: ChestCT) -> None:
    paths = write_study(ct.datasets[:3], tmp_path)
    raw = paths[0].read_bytes()
    assert raw[:128] == b"\x00" * 128 and raw[128:132] == b"DICM"
    ds = pydicom.dcmread(paths[0])
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert [p.name for p in paths] == sorted(p.name for p in paths)


def test_shuffled_names_hide_slice_order(tmp_path: Path, ct: ChestCT) -> None:
    paths = write_study(ct.datasets, tmp_path, shuffle_names=True)
    by_name = [
        int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in sorted(paths)
    ]
    assert sorted(by_name) == list(range(1, len(paths) + 1))
    assert by_name != sorted(by_name)
    assert [p.name for p in paths] == [
        p.name for p in write_study(ct.datasets, tmp_path / "again", shuffle_names=True)
    ]

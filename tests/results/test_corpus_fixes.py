"""Bugs the real-world corpus found (issue 11 item 8), one test each."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from dicomnode.results.errors import EncodingError
from dicomnode.results.sanitize import sanitize_sources
from dicomnode.results.sources import geometry_from_datasets
from dicomnode.results.summary import _spacing


def _image(**attrs: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", "1.2.3.4"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.1"
    ds.Rows = ds.Columns = 4
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, 0]
    ds.PixelSpacing = [1, 1]
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def test_non_ascii_names_without_a_character_set_are_emptied():
    ds = _image(PatientName=b"M\xfcller^J\xfcrgen", ReferringPhysicianName="Smith^J")
    sanitized = sanitize_sources([ds])
    (copy,) = sanitized.datasets
    assert sanitized.repaired == ("PatientName",)
    assert copy.PatientName in (None, "") and copy.ReferringPhysicianName == "Smith^J"
    declared = _image(SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jürgen")
    assert sanitize_sources([declared]).repaired == ()


def test_missing_geometry_is_said_without_python_words():
    with pytest.raises(EncodingError) as caught:
        geometry_from_datasets([_image()])  # no FrameOfReferenceUID
    assert "FrameOfReferenceUID is missing" in str(caught.value)
    assert "object has no attribute" not in str(caught.value)
    with pytest.raises(EncodingError) as zero:
        geometry_from_datasets([_image(FrameOfReferenceUID="1.2.3.9", PixelSpacing=[0, 0])])
    assert "PixelSpacing must be 2 values > 0 mm" in str(zero.value)
    assert "pixel_spacing" not in str(zero.value)


@pytest.mark.parametrize("spacing", [[0, 0], [-0.8, -0.8], None])
def test_summary_draws_square_pixels_for_unusable_spacing(spacing):
    ds = Dataset()
    if spacing is not None:
        ds.PixelSpacing = spacing
    assert _spacing(ds) == (1.0, 1.0)
    assert _spacing(_image(PixelSpacing=[0.5, 0.25])) == (0.5, 0.25)

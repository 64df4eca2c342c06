"""Mammography: headers, density against pixels, masses where the truth says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dicomnode.synthetic import DensityClass, Laterality, Mammogram, View, mammography, write_study


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = write_study(mammography(2, shape=(96, 80)).datasets, tmp_path / "a")
    second = write_study(mammography(2, shape=(96, 80)).datasets, tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_four_views_with_codes(mammo: Mammogram) -> None:
    assert mammo.views == [View.RCC, View.LCC, View.RMLO, View.LMLO]
    codes = {"CC": "399162004", "MLO": "399368009"}
    for view, ds in zip(mammo.views, mammo.datasets, strict=True):
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert ds.Modality == "MG" and ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.ImageLaterality == view.laterality.value
        assert ds.ViewPosition == view.projection.value
        assert ds.ViewCodeSequence[0].CodeValue == codes[view.projection.value]
        assert ds.ViewCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.PixelRepresentation == 0
        assert "Laterality" not in ds
    assert len({ds.StudyInstanceUID for ds in mammo.datasets}) == 1
    assert mammo.datasets[0].PatientSex == "F"


def _dense_fraction(ds_pixels: np.ndarray) -> float:
    breast = ds_pixels > 300
    return float((ds_pixels[breast] > 1900).mean())


def test_density_class_is_monotonic_with_measured_fraction() -> None:
    measured, truth = [], []
    for density in "ABCD":
        study = mammography(6, shape=(192, 160), density=density, masses={})
        assert study.truth.density is DensityClass(density)
        fractions = study.truth.fibroglandular_fraction
        assert all(DensityClass.from_fraction(f).value == density for f in fractions.values())
        truth.append(np.mean(list(fractions.values())))
        measured.append(np.mean([_dense_fraction(ds.pixel_array) for ds in study.datasets]))
    assert truth == sorted(truth) and measured == sorted(measured)
    assert measured[-1] - measured[0] > 0.4


def test_masses_are_where_the_truth_says(mammo: Mammogram) -> None:
    assert mammo.truth.has_mass(Laterality.LEFT) and not mammo.truth.has_mass("R")
    (mass,) = mammo.truth.masses
    assert set(mass.positions) == {View.LCC, View.LMLO}
    clean = mammography(3, shape=(256, 208), masses={})
    radius = mass.diameter_mm / 2 / float(mammo.datasets[0].PixelSpacing[0])
    for view, point in mass.positions.items():
        rows, columns = np.ogrid[:256, :208]
        disk = (rows - point.row) ** 2 + (columns - point.column) ** 2 < (0.6 * radius) ** 2
        with_mass = mammo.dataset(view).pixel_array.astype(float)
        without = clean.dataset(view).pixel_array.astype(float)
        assert with_mass[disk].mean() - without[disk].mean() > 800
        assert with_mass[~disk].mean() == pytest.approx(without[~disk].mean(), abs=20)
    for view in (View.RCC, View.RMLO):
        assert np.array_equal(mammo.dataset(view).pixel_array, clean.dataset(view).pixel_array)


def test_monochrome1_and_bit_depth() -> None:
    mono2 = mammography(8, shape=(96, 80), bits_stored=16, masses={})
    mono1 = mammography(8, shape=(96, 80), bits_stored=16, masses={}, photometric="MONOCHROME1")
    ds1, ds2 = mono1.datasets[0], mono2.datasets[0]
    assert ds1.PhotometricInterpretation == "MONOCHROME1" and ds1.BitsStored == 16
    assert ds1.PresentationLUTShape == "INVERSE" and ds2.PresentationLUTShape == "IDENTITY"
    assert np.array_equal(ds1.pixel_array.astype(int), 65535 - ds2.pixel_array.astype(int))
    assert ds2.pixel_array.max() > 4096


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="bits_stored"):
        mammography(0, bits_stored=10)
    with pytest.raises(ValueError, match="photometric"):
        mammography(0, photometric="RGB")

"""Chest CT: determinism, ground truth against pixels and headers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomnode.synthetic import ChestCT, NoduleKind, NoduleSpec, chest_ct, write_study
from dicomnode.synthetic.common import axis_coordinates

from .conftest import patient_position


def _bytes(study: ChestCT, folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in write_study(study.datasets, folder)]


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = _bytes(chest_ct(4, shape=(48, 48, 24)), tmp_path / "a")
    second = _bytes(chest_ct(4, shape=(48, 48, 24)), tmp_path / "b")
    assert first == second


def test_different_seed_gives_different_study() -> None:
    a, b = chest_ct(1, shape=(64, 64, 32)), chest_ct(2, shape=(64, 64, 32))
    assert [n.centre_mm for n in a.nodules] != [n.centre_mm for n in b.nodules]
    assert a.datasets[0].StudyInstanceUID != b.datasets[0].StudyInstanceUID
    assert a.datasets[0].SOPInstanceUID != b.datasets[0].SOPInstanceUID


def test_headers(ct: ChestCT) -> None:
    ds = ct.datasets[0]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert (ds.Modality, ds.BodyPartExamined) == ("CT", "CHEST")
    assert (float(ds.RescaleIntercept), float(ds.RescaleSlope)) == (-1024.0, 1.0)
    assert ds.PixelRepresentation == 1 and ds.BitsAllocated == 16
    assert ds.PatientName == "SYNTHETIC^CTPHANTOM^0011"
    assert [d.InstanceNumber for d in ct.datasets] == list(range(1, 49))
    assert len({d.SOPInstanceUID for d in ct.datasets}) == 48
    assert float(ds.SliceThickness) == ct.geometry.slice_thickness_mm
    hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    assert np.array_equal(hu, ct.volume[0])


def _sphere_and_shell(study: ChestCT, index: int) -> tuple[float, float]:
    nodule = study.nodules[index]
    x, y, z = axis_coordinates(study.geometry)
    cx, cy, cz = nodule.centre_mm
    distance = np.sqrt(
        (x[None, None, :] - cx) ** 2 + (y[None, :, None] - cy) ** 2 + (z[:, None, None] - cz) ** 2
    )
    radius = nodule.diameter_mm / 2
    inside = distance < radius - 2.0
    shell = (distance > radius + 3.0) & (distance < radius + 6.0)
    return float(study.volume[inside].mean()), float(study.volume[shell].mean())


def test_nodules_are_dense_inside_aerated_lung(ct: ChestCT) -> None:
    for index, nodule in enumerate(ct.nodules):
        inside, shell = _sphere_and_shell(ct, index)
        assert shell < -750, nodule
        floor = -100 if nodule.kind is NoduleKind.SOLID else -650
        assert inside > floor and inside - shell > 200, nodule


def test_explicit_part_solid_nodule() -> None:
    spec = NoduleSpec((75.0, -5.0, -150.0), 20.0, "part_solid")
    study = chest_ct(3, shape=(128, 128, 48), nodules=[spec])
    (nodule,) = study.nodules
    assert nodule.kind is NoduleKind.PART_SOLID and nodule.solid_diameter_mm < 20.0
    i, j, k = nodule.voxel
    core = study.volume[k, j - 1 : j + 2, i - 1 : i + 2].mean()
    inside, shell = _sphere_and_shell(study, 0)
    assert core > -300 and -700 < inside < core and shell < -750
    assert nodule.volume_ml == pytest.approx(np.pi * 20.0**3 / 6000)


def test_nodule_diameter_is_validated() -> None:
    with pytest.raises(ValueError, match="3–30 mm"):
        NoduleSpec((0.0, 0.0, 0.0), 40.0)
    with pytest.raises(ValueError, match="diameter_range_mm"):
        chest_ct(0, shape=(32, 32, 8), diameter_range_mm=(1.0, 5.0))


@pytest.mark.parametrize("fixture", ["ct", "ct_reversed"])
def test_header_geometry_matches_ground_truth(fixture: str, request: pytest.FixtureRequest) -> None:
    study: ChestCT = request.getfixturevalue(fixture)
    row_spacing, column_spacing = study.geometry.pixel_spacing_mm
    tolerance = np.array([column_spacing, row_spacing, study.geometry.slice_spacing_mm]) / 2
    for nodule in study.nodules:
        i, j, k = nodule.voxel
        ds = study.datasets[k]
        assert ds.InstanceNumber == k + 1
        error = patient_position(ds, i, j) - np.array(nodule.centre_mm)
        assert np.all(np.abs(error) <= tolerance + 1e-6), (nodule, error)


def test_reverse_order_flips_the_stack(ct: ChestCT, ct_reversed: ChestCT) -> None:
    z_forward = [float(ds.ImagePositionPatient[2]) for ds in ct.datasets]
    z_reverse = [float(ds.ImagePositionPatient[2]) for ds in ct_reversed.datasets]
    assert z_forward == sorted(z_forward) and z_reverse == sorted(z_reverse, reverse=True)
    assert np.array_equal(ct.volume, ct_reversed.volume[::-1])
    assert [n.centre_mm for n in ct.nodules] == [n.centre_mm for n in ct_reversed.nodules]


def test_geometry_from_files_read_in_disk_order(tmp_path: Path, ct_reversed: ChestCT) -> None:
    paths = write_study(ct_reversed.datasets, tmp_path, shuffle_names=True)
    datasets = [pydicom.dcmread(path) for path in sorted(paths)]
    normal = np.cross(
        [float(v) for v in datasets[0].ImageOrientationPatient[:3]],
        [float(v) for v in datasets[0].ImageOrientationPatient[3:]],
    )
    datasets.sort(key=lambda ds: float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])))
    volume = np.stack([ds.pixel_array for ds in datasets]).astype(np.int32) - 1024
    for nodule in ct_reversed.nodules:
        i, j, _ = nodule.voxel
        k = int(
            np.argmin(
                [abs(float(ds.ImagePositionPatient[2]) - nodule.centre_mm[2]) for ds in datasets]
            )
        )
        assert np.allclose(patient_position(datasets[k], i, j)[:2], nodule.centre_mm[:2], atol=1.5)
        assert volume[k, j, i] > -400


def test_benchmark_size_generates() -> None:
    """512 × 512 × 300 builds (no timing asserted; it takes about two seconds)."""
    study = chest_ct(0, shape=(512, 512, 300), n_nodules=1)
    assert study.volume.shape == (300, 512, 512) and len(study.datasets) == 300
    assert len(study.datasets[150].PixelData) == 512 * 512 * 2

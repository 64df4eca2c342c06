"""The findings model: validation messages, geometry maths, import without pydicom."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dicomnode.results import (
    Classification,
    ClassProbability,
    FindingKind,
    Findings,
    Mask,
    RegionFinding,
    VolumeGeometry,
    geometry_from_datasets,
)

from .sources import volume_series


def _geometry(**kwargs: object) -> VolumeGeometry:
    base: dict[str, object] = {
        "sop_instance_uids": ("1.2.1", "1.2.2"),
        "positions": ((0.0, 0.0, 0.0), (0.0, 0.0, 2.0)),
        "orientation": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        "pixel_spacing": (0.5, 0.5),
        "rows": 4,
        "columns": 4,
        "frame_of_reference_uid": "1.2.3",
    }
    base.update(kwargs)
    return VolumeGeometry(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"positions": ((0.0, 0.0, 0.0),)}, "positions must have 2 entries"),
        ({"orientation": (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)}, "orthogonal"),
        ({"orientation": (2.0, 0.0, 0.0, 0.0, 1.0, 0.0)}, "unit vectors"),
        ({"pixel_spacing": (0.0, 0.5)}, "pixel_spacing must be 2 values > 0"),
        ({"frame_numbers": (0, 1)}, "frame_numbers must be >= 1"),
        ({"frame_of_reference_uid": ""}, "frame_of_reference_uid"),
    ],
)
def test_geometry_validation_names_parameter_and_limit(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _geometry(**kwargs)


def test_mask_validation() -> None:
    geo = _geometry()
    with pytest.raises(ValueError, match="dtype bool"):
        Mask(FindingKind.LUNG_NODULE, np.zeros(geo.shape, np.uint8), geo)
    with pytest.raises(ValueError, match=r"array shape \(1, 4, 4\) must equal geometry shape"):
        Mask(FindingKind.LUNG_NODULE, np.zeros((1, 4, 4), bool), geo)
    assert Mask("brain_lesion", np.zeros(geo.shape, bool), geo).is_empty


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"score": 1.5}, r"score must lie in \[0, 1\]"),
        ({"diameter_mm": -1.0}, "diameter_mm must be a finite number >= 0"),
        ({"shape": "ellipsoid"}, "axes must have 3 vectors"),
        ({"tracking_id": "x" * 65}, "tracking_id must be at most 64"),
        ({"center": (0.0, 1.0)}, "center must have 3 components"),
        ({"kind": "breast_assessment"}, "localised finding kind"),
    ],
)
def test_region_validation(kwargs: dict, message: str) -> None:
    args: dict[str, object] = {"kind": "lung_nodule", "shape": "point", "center": (0, 0, 0)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        RegionFinding(**args)  # type: ignore[arg-type]


def test_region_axes_must_be_orthogonal() -> None:
    with pytest.raises(ValueError, match="orthogonal"):
        RegionFinding("lung_nodule", "box", (0, 0, 0), axes=((1, 0, 0), (1, 1, 0), (0, 0, 1)))


def test_classification_and_findings_validation() -> None:
    with pytest.raises(ValueError, match="at least one of score, density"):
        Classification("breast_assessment", "L")
    with pytest.raises(ValueError, match="probability must lie in"):
        ClassProbability("A", 2.0)
    with pytest.raises(ValueError, match="not in kinds"):
        Findings(
            kinds=("lung_nodule",),
            classifications=(Classification("breast_assessment", score=0.1),),
        )
    with pytest.raises(ValueError, match="kinds must name at least 1"):
        Findings(kinds=())
    assert Findings(kinds=("lung_nodule",)).is_empty


def test_sphere_volume() -> None:
    r = RegionFinding.sphere("lung_nodule", (1, 2, 3), 10.0)
    assert r.volume_ml == pytest.approx(4 / 3 * np.pi * 125 / 1000)
    assert r.axes[0] == (5.0, 0.0, 0.0)


@pytest.mark.parametrize("tilt", [0.0, 20.0])
def test_index_patient_round_trip(tilt: float) -> None:
    series = volume_series(tilt_degrees=tilt, z_positions=[0, 1, 3, 6, 10], reverse=True)
    geo = geometry_from_datasets(series)
    for k, row, col in [(0, 0, 0), (2, 10, 30), (4, 63, 5)]:
        point = geo.index_to_patient(k, row, col)
        assert geo.patient_to_index(point) == (k, pytest.approx(row), pytest.approx(col))


def test_geometry_sorts_slices_along_normal() -> None:
    series = volume_series(reverse=True, slices=5)
    geo = geometry_from_datasets(series)
    assert [p[2] for p in geo.positions] == sorted(p[2] for p in geo.positions)
    assert geo.sop_instance_uids[0] == series[-1].SOPInstanceUID


def test_findings_import_without_pydicom() -> None:
    code = (
        "import sys; from dicomnode.results import Findings, Mask, RegionFinding; "
        "import dicomnode.results.findings; "
        "assert 'pydicom' not in sys.modules and 'highdicom' not in sys.modules "
        "and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

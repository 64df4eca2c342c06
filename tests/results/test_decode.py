"""Round trip through findings_from_sr: the findings recovered equal the findings given."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicomnode.results import (
    Algorithm,
    Classification,
    Findings,
    RegionFinding,
    encode,
    findings_from_sr,
    geometry_from_datasets,
)

from .dicom_check import write
from .sources import volume_series

ROOT = "1.2.826.0.1.3680043.10.4321"


def _assert_region_equal(got: RegionFinding, want: RegionFinding, tolerance: float) -> None:
    assert (got.kind, got.shape) == (want.kind, want.shape)
    assert np.allclose(got.center, want.center, atol=tolerance)
    lengths = sorted(float(np.linalg.norm(a)) for a in got.axes)
    assert lengths == pytest.approx(sorted(float(np.linalg.norm(a)) for a in want.axes), abs=1e-3)
    for name in ("diameter_mm", "volume_ml", "score"):
        if getattr(want, name) is None:
            assert getattr(got, name) is None
        else:
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-9, abs=1e-12)


def test_regions_round_trip(algorithm: Algorithm, tmp_path: Path) -> None:
    series = volume_series(tilt_degrees=12.0, reverse=True, key="decode")
    geo = geometry_from_datasets(series)
    regions = (
        RegionFinding.sphere(
            "lung_nodule", geo.index_to_patient(4, 20, 30), 7.5, score=0.42, tracking_id="A"
        ),
        RegionFinding(
            "lung_nodule", "point", geo.index_to_patient(9, 1, 2), score=1.0, tracking_id="B"
        ),
        RegionFinding(
            "lung_nodule",
            "ellipsoid",
            geo.index_to_patient(12, 40, 40),
            axes=((0.0, 0.0, 2.0), (4.0, 0.0, 0.0), (0.0, 3.0, 0.0)),
            diameter_mm=8.0,
            volume_ml=0.1,
            tracking_id="C",
        ),
        RegionFinding(
            "lung_nodule",
            "box",
            geo.index_to_patient(15, 30, 10),
            axes=((2.0, 0.0, 0.0), (0.0, 3.0, 0.0), (0.0, 0.0, 1.5)),
            score=0.0,
            tracking_id="D",
        ),
    )
    findings = Findings(kinds=("lung_nodule",), regions=regions)
    (sr,) = encode(findings, series, algorithm=algorithm, outputs=["sr"], uid_root=ROOT)
    back = findings_from_sr(hd.sr.srread(write(sr, tmp_path / "sr.dcm")))
    assert back.kinds == findings.kinds
    assert [r.tracking_id for r in back.regions] == ["A", "B", "C", "D"]
    half_voxel = min(geo.pixel_spacing) / 2
    for got, want in zip(back.regions, regions, strict=True):
        _assert_region_equal(got, want, tolerance=min(half_voxel, 1e-3))


def test_classifications_and_empty_round_trip(
    mg: list[Dataset], ct: list[Dataset], tmp_path: Path
) -> None:
    alg = Algorithm("mammo_score", "0.3.0")
    items = (
        Classification("breast_assessment", "R", score=0.125, density="D"),
        Classification("breast_assessment", "L", score=0.5, density="A"),
    )
    (sr,) = encode(
        Findings(kinds=("breast_assessment",), classifications=items),
        mg,
        algorithm=alg,
        outputs=["sr"],
    )
    back = findings_from_sr(hd.sr.srread(write(sr, tmp_path / "mg.dcm")))
    assert [(c.laterality, c.score, c.density) for c in back.classifications] == [
        (c.laterality, c.score, c.density) for c in items
    ]
    (sr,) = encode(Findings(kinds=("brain_lesion",)), ct, algorithm=alg, outputs=["sr"])
    empty = findings_from_sr(hd.sr.srread(write(sr, tmp_path / "empty.dcm")))
    assert empty.is_empty and [k.value for k in empty.kinds] == ["brain_lesion"]

"""Result objects are validated before they may leave: valid ones pass, broken ones are named."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicomnode.results import (
    Algorithm,
    Findings,
    Mask,
    RegionFinding,
    encode,
    geometry_from_datasets,
)
from dicomnode.results.validate import DCIODVFY, validate

from .conftest import ROOT


def _objects(ct: list[Dataset], algorithm: Algorithm) -> dict[str, Dataset]:
    geo = geometry_from_datasets(ct)
    mask = np.zeros(geo.shape, bool)
    mask[4, 5:8, 5:8] = True
    centre = geo.positions[4]
    findings = Findings(
        kinds=("lung_nodule",),
        regions=(RegionFinding.sphere("lung_nodule", centre, 4.0, score=0.9),),
        masks=(Mask("lung_nodule", mask, geo),),
    )
    made = encode(findings, ct, algorithm=algorithm, uid_root=ROOT)
    return {str(ds.Modality): ds for ds in made}


def _sources(ct: list[Dataset]) -> set[str]:
    return {str(ds.SOPInstanceUID) for ds in ct}


def test_the_encoders_objects_pass(ct, algorithm):
    assert DCIODVFY is not None, "dciodvfy is missing (scripts/setup.sh installs dicom3tools)"
    for modality, ds in _objects(ct, algorithm).items():
        assert validate(ds, _sources(ct)) == [], modality


@pytest.mark.parametrize(
    ("modality", "damage", "expected"),
    [
        ("SEG", lambda ds: setattr(ds, "SeriesInstanceUID", ""), "Type 1 SeriesInstanceUID"),
        ("SR", lambda ds: delattr(ds, "ContentDate"), "ContentDate"),
        ("OT", lambda ds: setattr(ds, "StudyDate", "2024-13-45"), "StudyDate: not a valid DA"),
        ("SR", lambda ds: setattr(ds, "Modality", "sr"), "Modality: not a valid CS"),
    ],
    ids=["empty-type-1", "missing-type-1", "bad-date", "lowercase-cs"],
)
def test_broken_objects_are_named(ct, algorithm, modality, damage, expected):
    ds = _objects(ct, algorithm)[modality]
    damage(ds)
    problems = validate(ds, _sources(ct), dciodvfy=False)
    assert any(expected in p for p in problems), problems
    assert "2024-13-45" not in " ".join(problems)  # never the values


def test_a_seg_on_instances_that_are_not_its_sources_is_refused(ct, algorithm):
    seg = _objects(ct, algorithm)["SEG"]
    problems = validate(seg, _sources(ct[1:]), dciodvfy=False)
    assert problems == ["SEG references 1 instance(s) that are not among its sources"]


def test_dciodvfy_errors_count_too(ct, algorithm):
    sr = _objects(ct, algorithm)["SR"]
    sr.CompletionFlag = "MAYBE"  # a CS of valid characters, not one of the defined terms
    problems = validate(sr, _sources(ct))
    assert problems and all(p.startswith("dciodvfy: ") for p in problems), problems

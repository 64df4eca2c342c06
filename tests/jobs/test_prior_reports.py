"""Which of a prior study's SR series may be ours, which retrieved files are our reports of a
prior series, and which of several is used (dicomnode.jobs.prior_reports)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomnode.jobs.prior_reports import (
    MAX_REPORT_SERIES,
    may_be_ours,
    newest_for,
    read_report,
    report_query,
)
from dicomnode.results import Algorithm, FindingKind, Findings, encode
from tests.results.sources import volume_series


def _answer(
    uid: str, description: str | None, date: str = "20240101", modality: str = "SR"
) -> Dataset:
    ds = Dataset()
    ds.SeriesInstanceUID, ds.Modality, ds.SeriesDate, ds.SeriesTime = uid, modality, date, ""
    if description is not None:
        ds.SeriesDescription = description
    return ds


def test_query_asks_for_sr_series_of_the_study():
    query = report_query("1.2.3")
    assert (query.QueryRetrieveLevel, query.StudyInstanceUID, query.Modality) == (
        "SERIES",
        "1.2.3",
        "SR",
    )
    assert "SeriesDescription" in query and "SeriesInstanceUID" in query
    assert "Manufacturer" not in query  # not a SERIES key on every source


def test_may_be_ours_filters_by_description_newest_first():
    answers = [
        _answer("1.1", "lung_nodule 0.1.0 SR RESEARCH USE ONLY", "20240101"),
        _answer("1.2", "brain_lesion 0.1.0 SR RESEARCH USE ONLY", "20240301"),
        _answer("1.3", None, "20240201"),  # no description: checked after retrieval
        _answer("1.4", "lung_nodule 0.2.0 SR DEMO WEIGHTS RESEARCH USE ONLY", "20240401"),
        _answer("1.5", "lung_nodule 0.2.0", "20240501", modality="CT"),  # Modality ignored
        _answer("1.6", "lung_nodules 1 SR", "20240601"),  # another pipeline, same prefix
    ]
    kept = may_be_ours(answers, "lung_nodule")
    assert [str(a.SeriesInstanceUID) for a in kept] == ["1.4", "1.3", "1.1"]
    many = [_answer(f"2.{n}", None, f"202401{n + 10:02d}") for n in range(8)]
    assert [str(a.SeriesInstanceUID) for a in may_be_ours(many, "x")] == [
        f"2.{n}" for n in range(7, 7 - MAX_REPORT_SERIES, -1)
    ]


@pytest.fixture(scope="module")
def ct() -> list[Dataset]:
    return volume_series(slices=3, rows=16, columns=16, key="prior-ct")


def _sr(sources: list[Dataset], path: Path, *, pipeline: str = "lung_nodule", when: str) -> Path:
    findings = Findings(kinds=(FindingKind.LUNG_NODULE,))
    (sr,) = encode(findings, sources, algorithm=Algorithm(pipeline, when), outputs=["sr"])
    sr.ContentDate, sr.ContentTime = when[:8], when[8:]
    sr.save_as(path, enforce_file_format=True)
    return path


def test_read_report_knows_ours_and_which_series_it_reports_on(ct, tmp_path):
    study, series = str(ct[0].StudyInstanceUID), str(ct[0].SeriesInstanceUID)
    ours = read_report(
        _sr(ct, tmp_path / "ours.dcm", when="20240102080000"),
        pipeline="lung_nodule",
        study_uid=study,
    )
    assert ours is not None and ours.series_uids == {series}
    assert ours.created == "20240102080000"
    other = _sr(ct, tmp_path / "other.dcm", pipeline="lung_nodule_x", when="20240102080000")
    assert read_report(other, pipeline="lung_nodule", study_uid=study) is None
    assert read_report(ours.path, pipeline="lung_nodule", study_uid="1.2.3") is None
    foreign = _sr(ct, tmp_path / "foreign.dcm", when="20240102080000")
    ds = pydicom.dcmread(foreign)
    ds.Manufacturer = "ACME"
    ds.save_as(foreign, enforce_file_format=True)
    assert read_report(foreign, pipeline="lung_nodule", study_uid=study) is None
    image = tmp_path / "image.dcm"
    ct[0].save_as(image, enforce_file_format=True)
    assert read_report(image, pipeline="lung_nodule", study_uid=study) is None
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    assert read_report(tmp_path / "junk.dcm", pipeline="lung_nodule", study_uid=study) is None


def test_newest_report_of_the_series_wins(ct, tmp_path):
    study, series = str(ct[0].StudyInstanceUID), str(ct[0].SeriesInstanceUID)
    reports = [
        read_report(
            _sr(ct, tmp_path / f"{when}.dcm", when=when), pipeline="lung_nodule", study_uid=study
        )
        for when in ("20240102080000", "20240303080000", "20240201080000")
    ]
    assert all(r is not None for r in reports)
    newest = newest_for([r for r in reports if r is not None], series)
    assert newest is not None and newest.path.name == "20240303080000.dcm"
    assert newest_for([r for r in reports if r is not None], "9.9.9") is None

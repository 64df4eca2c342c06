"""Change since a prior study in the TID 1500 SR: codes, prior references, the priors note."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicomnode.results import (
    Algorithm,
    Findings,
    RegionFinding,
    encode,
    findings_from_sr,
    geometry_from_datasets,
)
from dicomnode.results.changes import (
    ChangeSnapshot,
    ChangeStatus,
    Comparison,
    InstanceRef,
    RegionChange,
)
from dicomnode.results.common import EncodingContext
from dicomnode.results.summary import PANEL, TILE, summary_lines

from .dicom_check import verify, write
from .sources import volume_series

ROOT = "1.2.826.0.1.3680043.10.4321"
CT = "1.2.840.10008.5.1.4.1.1.2"
SR = "1.2.840.10008.5.1.4.1.1.88.34"


def _groups(sr: Dataset, tmp_path: Path) -> dict[str, hd.sr.MeasurementsAndQualitativeEvaluations]:
    report = hd.sr.srread(write(sr, tmp_path / "read.dcm")).content
    assert isinstance(report, hd.sr.MeasurementReport)
    return {g.tracking_identifier: g for g in report.get_image_measurement_groups()}


def _evaluation(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: str) -> str:
    (item,) = [q for q in group.get_qualitative_evaluations() if q.name.value == name]
    return str(item.value.value)


def _comment(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> str:
    texts = [
        item.TextValue
        for item in group[0].ContentSequence
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "121106"
    ]
    assert len(texts) == 1
    return str(texts[0])


def test_changes_coded_and_prior_referenced(algorithm: Algorithm, tmp_path: Path) -> None:
    series = volume_series(key="changes")
    geo = geometry_from_datasets(series)
    centre = geo.index_to_patient(5, 31, 41)
    prior_image = InstanceRef("2.25.1", "2.25.2", CT, "2.25.3")
    prior_sr = InstanceRef("2.25.1", "2.25.4", SR, "2.25.5")
    changes = (
        RegionChange(
            "lung_nodule", "enlarging", "nodule 1", (1, 2, 3), centre, 0.25, 0.5, prior_image
        ),
        RegionChange("lung_nodule", "new", "nodule 2", None, centre, None, 0.1),
        RegionChange(
            "lung_nodule", "resolved", "prior nodule 3", (4, 5, 6), None, 0.2, None, prior_sr
        ),
    )
    comparison = Comparison("2.25.1", "20240101", 180, changes, (prior_image, prior_sr))
    findings = Findings(
        kinds=("lung_nodule",),
        regions=(RegionFinding.sphere("lung_nodule", centre, 8.0, tracking_id="nodule 1"),),
        comparison=comparison,
    )
    (sr,) = encode(findings, series, algorithm=algorithm, outputs=["sr"], uid_root=ROOT)
    verify(sr, tmp_path, "SR")
    other = sr.PertinentOtherEvidenceSequence[0]
    assert other.StudyInstanceUID == "2.25.1"
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for s in other.ReferencedSeriesSequence
        for item in s.ReferencedSOPSequence
    }
    assert referenced == {"2.25.3", "2.25.5"}
    assert "PredecessorDocumentsSequence" not in sr
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99DICOMNODE"
    groups = _groups(sr, tmp_path)
    grown = groups["nodule 1 change"]
    values = {m.name.value: (float(m.value), m.unit.value) for m in grown.get_measurements()}
    assert values["VDT"] == (pytest.approx(180.0, rel=1e-4), "d")
    assert values["VOLCHG"] == (pytest.approx(100.0), "%")
    assert values["PRIORVOL"] == (pytest.approx(0.25), "mL")
    assert values["118565006"] == (pytest.approx(0.5), "mL")
    assert _evaluation(grown, "CHANGE") == "35105006"  # SCT Increased
    prior_volume = next(m for m in grown.get_measurements() if m.name.value == "PRIORVOL")
    assert prior_volume.referenced_images[0].referenced_sop_instance_uid == "2.25.3"
    assert _evaluation(groups["nodule 2 change"], "CHANGE") == "7147002"
    resolved = groups["prior nodule 3 change"]
    assert _evaluation(resolved, "CHANGE") == "RESOLVED"
    assert "2.25.5" in _comment(resolved)
    summary = groups["Comparison with prior study"]
    assert _evaluation(summary, "122140") == "373066001"  # Yes
    assert "20240101" in _comment(summary)
    assert ChangeStatus.ENLARGING in {c.status for c in changes}
    decoded = findings_from_sr(sr)  # a later follow-up reads this SR as its prior's
    assert [r.tracking_id for r in decoded.regions] == ["nodule 1"]
    assert not decoded.classifications


def test_missing_prior_said_in_the_sr(algorithm: Algorithm, tmp_path: Path) -> None:
    series = volume_series(key="nochange")
    note = "source pacs did not answer within 30 s"
    findings = Findings(kinds=("lung_nodule",), comparison=Comparison(note=note))
    (sr,) = encode(findings, series, algorithm=algorithm, outputs=["sr"], uid_root=ROOT)
    verify(sr, tmp_path, "SR")
    assert "PertinentOtherEvidenceSequence" not in sr
    summary = _groups(sr, tmp_path)["Comparison with prior study"]
    assert _evaluation(summary, "122140") == "373067005"  # No
    assert note in _comment(summary)


def test_change_model_refuses_inconsistent_values() -> None:
    with pytest.raises(ValueError, match="new finding"):
        RegionChange("lung_nodule", "new", "n", prior_volume_ml=0.2, current_volume_ml=0.3)
    with pytest.raises(ValueError, match="prior_study_uid"):
        Comparison(changes=(RegionChange("lung_nodule", "new", "n", current_volume_ml=0.1),))
    change = RegionChange("lung_nodule", "stable", "n", prior_volume_ml=0.2, current_volume_ml=0.1)
    assert change.doubling_time_days(100) is None  # shrinking: no doubling time
    assert change.volume_change_percent == pytest.approx(-50.0)


def test_summary_shows_prior_beside_current(algorithm: Algorithm) -> None:
    series = volume_series(key="summary-changes")
    prior = np.zeros((40, 40), np.float32)
    current = np.zeros((40, 40), np.float32)
    current[15:25, 15:25] = 100.0  # a bright new finding, only in the current
    comparison = Comparison(
        "2.25.1",
        "20240101",
        180,
        (RegionChange("lung_nodule", "new", "nodule 1", current_volume_ml=0.1),),
        snapshots=(ChangeSnapshot("nodule 1: new", prior, current),),
        total_prior_ml=0.0,
        total_current_ml=0.1,
    )
    findings = Findings(kinds=("lung_nodule",), comparison=comparison)
    (sc,) = encode(findings, series, algorithm=algorithm, outputs=["summary"], uid_root=ROOT)
    pixels = sc.pixel_array
    assert pixels.shape[1] >= 2 * TILE
    band = pixels[PANEL : PANEL + TILE]  # the pair row under the key slices
    left, right = band[:, :TILE].astype(int), band[:, TILE : 2 * TILE].astype(int)
    assert right[TILE // 2, TILE // 2].sum() > left[TILE // 2, TILE // 2].sum() + 300
    lines = summary_lines(findings, EncodingContext(algorithm, ROOT, 900, "k", ()))
    assert any("180 days: 1 new" in line for line in lines)

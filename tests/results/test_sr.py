"""TID 1500 SR: round trip of regions, masks, classifications; empty result; predecessor."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dicomnode.results import (
    Algorithm,
    Classification,
    ClassProbability,
    Findings,
    Mask,
    Predecessor,
    RegionFinding,
    encode,
    geometry_from_datasets,
)

from .dicom_check import verify, write
from .sources import mammo_study, volume_series

ROOT = "1.2.826.0.1.3680043.10.4321"


def _report(sr: Dataset, tmp_path: Path) -> hd.sr.MeasurementReport:
    doc = hd.sr.srread(write(sr, tmp_path / "sr.dcm"))
    content = doc.content
    assert isinstance(content, hd.sr.MeasurementReport)
    return content


def _measurements(group: object) -> dict[str, tuple[float, str]]:
    return {m.name.value: (m.value, m.unit.value) for m in group.get_measurements()}  # type: ignore[attr-defined]


def _regions(series: list[Dataset]) -> tuple[RegionFinding, ...]:
    geo = geometry_from_datasets(series)
    return (
        RegionFinding.sphere("lung_nodule", geo.index_to_patient(5, 31, 41), 6.0, score=0.91),
        RegionFinding(
            "lung_nodule", "point", geo.index_to_patient(3, 10, 20), score=0.5, tracking_id="N-2"
        ),
        RegionFinding(
            "lung_nodule",
            "box",
            geo.index_to_patient(8, 10, 20),
            axes=((3.0, 0.0, 0.0), (0.0, 2.0, 0.0), (0.0, 0.0, 4.0)),
            diameter_mm=8.0,
            volume_ml=0.192,
        ),
    )


@pytest.mark.parametrize("kwargs", [{}, {"tilt_degrees": 20.0, "reverse": True}])
def test_regions_round_trip(kwargs: dict, algorithm: Algorithm, tmp_path: Path) -> None:
    series = volume_series(**kwargs, key=f"sr{len(kwargs)}")
    geo = geometry_from_datasets(series)
    regions = _regions(series)
    findings = Findings(kinds=("lung_nodule",), regions=regions)
    (sr,) = encode(findings, series, algorithm=algorithm, outputs=["sr"], uid_root=ROOT)
    verify(sr, tmp_path, "SR")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    report = _report(sr, tmp_path)
    groups = report.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(regions)
    half_voxel = min(geo.pixel_spacing) / 2
    for n, (region, group) in enumerate(zip(regions, groups, strict=True), start=1):
        assert group.tracking_identifier == (region.tracking_id or f"Lung nodule {n}")
        assert group.tracking_uid.startswith(ROOT + ".")
        assert group.finding_type == codes.SCT.Nodule
        assert group.finding_sites[0].value == codes.SCT.Lung
        surface = group.roi
        assert (
            surface.graphic_type.value
            == {"point": "POINT", "ellipsoid": "ELLIPSOID", "box": "POLYGON"}[region.shape.value]
        )
        data = surface.graphic_data
        elements = [data] if isinstance(data, np.ndarray) else list(data)
        points = np.concatenate([np.asarray(e).reshape(-1, 3) for e in elements])
        if region.shape.value == "box":  # 6 closed faces: the 8 distinct corners
            points = np.unique(points.round(6), axis=0)
            assert len(points) == 8
            extent = points.max(axis=0) - points.min(axis=0)
            assert extent == pytest.approx(2 * np.abs(np.asarray(region.axes)).sum(axis=0))
        centre = points.mean(axis=0)
        assert np.abs(centre - np.asarray(region.center)).max() < half_voxel
        if region.shape.value == "ellipsoid":
            pts = elements[0]
            assert np.linalg.norm(pts[0] - pts[1]) == pytest.approx(region.diameter_mm)
        measured = _measurements(group)
        if region.diameter_mm is not None:
            assert measured["81827009"] == (pytest.approx(region.diameter_mm), "mm")
        if region.volume_ml is not None:
            assert measured["118565006"] == (pytest.approx(region.volume_ml), "mL")
        if region.score is not None:
            assert measured["111012"] == (pytest.approx(region.score), "1")
        refs = {img.referenced_sop_instance_uid for img in surface.source_images_for_segmentation}
        k, _, _ = geo.patient_to_index(region.center)
        assert geo.sop_instance_uids[k] in refs
        if region.shape.value == "ellipsoid":  # every slice the sphere cuts is referenced
            offsets = (np.asarray(geo.positions) - np.asarray(region.center)) @ geo.normal
            radius = region.diameter_mm / 2
            expected = {geo.sop_instance_uids[i] for i in np.flatnonzero(np.abs(offsets) <= radius)}
            assert refs == expected and len(expected) > 1
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.SeriesInstanceUID == series[0].SeriesInstanceUID
    assert {str(r.ReferencedSOPInstanceUID) for r in evidence.ReferencedSOPSequence} == {
        str(ds.SOPInstanceUID) for ds in series
    }


def test_mask_group_references_seg(ct: list[Dataset], algorithm: Algorithm, tmp_path: Path) -> None:
    geo = geometry_from_datasets(ct)
    mask = np.zeros(geo.shape, bool)
    mask[4:6, 10:14, 10:12] = True
    findings = Findings(kinds=("brain_lesion",), masks=(Mask("brain_lesion", mask, geo),))
    seg, sr, _ = encode(findings, ct, algorithm=algorithm, uid_root=ROOT)
    verify(sr, tmp_path, "SR")
    (group,) = _report(sr, tmp_path).get_volumetric_roi_measurement_groups()
    assert group.reference_type == codes.DCM.ReferencedSegment
    segment = group.referenced_segment
    assert segment is not None
    assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    voxel_ml = 0.8 * 0.7 * 2.5 / 1000
    assert _measurements(group)["118565006"][0] == pytest.approx(16 * voxel_ml)


def test_burden_has_its_own_group_and_concept(
    ct: list[Dataset], algorithm: Algorithm, tmp_path: Path
) -> None:
    """The total over all lesions is a Total (derivation) of its own group, apart from the
    per-lesion volumes, so a reader cannot add it to them."""
    geo = geometry_from_datasets(ct)
    mask = np.zeros(geo.shape, bool)
    mask[4:6, 10:14, 10:12] = True
    mask[8, 30:32, 30:32] = True
    lesion = RegionFinding.sphere("brain_lesion", geo.index_to_patient(11, 11, 5), 4.0, score=0.8)
    findings = Findings(
        kinds=("brain_lesion",), regions=(lesion,), masks=(Mask("brain_lesion", mask, geo),)
    )
    seg, sr, _ = encode(findings, ct, algorithm=algorithm, uid_root=ROOT)
    verify(sr, tmp_path, "SR")
    groups = _report(sr, tmp_path).get_volumetric_roi_measurement_groups()
    burden = [g for g in groups if g.reference_type == codes.DCM.ReferencedSegment]
    per_lesion = [g for g in groups if g.reference_type != codes.DCM.ReferencedSegment]
    assert len(burden) == 1 and len(per_lesion) == 1
    assert "burden" in burden[0].tracking_identifier
    assert "burden" not in per_lesion[0].tracking_identifier
    (total,) = burden[0].get_measurements()
    assert total.derivation == codes.SCT.Total
    assert total.method == codes.DCM.SumOfSegmentedVoxelMethodForVolume
    assert total.value == pytest.approx(20 * 0.8 * 0.7 * 2.5 / 1000)
    for measurement in per_lesion[0].get_measurements():
        assert measurement.derivation is None


def test_sr_names_the_weights(ct: list[Dataset], tmp_path: Path) -> None:
    """The SR says which weights made it: name, version, sha256, and that they are demo."""
    algorithm = Algorithm(
        "lung_nodule",
        "1.2.0",
        "cd" * 32,
        demo_weights=True,
        model_name="Lung nodule CT detection (dicomnode demo)",
        model_version="0.2.0",
    )
    region = RegionFinding.sphere(
        "lung_nodule", geometry_from_datasets(ct).index_to_patient(5, 31, 41), 6.0, score=0.7
    )
    findings = Findings(kinds=("lung_nodule",), regions=(region,))
    (sr,) = encode(findings, ct, algorithm=algorithm, outputs=["sr"], uid_root=ROOT)
    verify(sr, tmp_path, "SR")
    (group,) = _report(sr, tmp_path).get_volumetric_roi_measurement_groups()
    (certainty,) = [m for m in group.get_measurements() if m.name == codes.DCM.CertaintyOfFinding]
    assert certainty.value == pytest.approx(0.7)
    texts = set(_text_values(sr))
    assert "weights=Lung nodule CT detection (dicomnode demo) 0.2.0" in texts
    assert f"model_sha256={'cd' * 32}" in texts
    assert any(t.startswith("demo=DEMO WEIGHTS") for t in texts)


def _text_values(ds: Dataset) -> list[str]:
    out = [str(ds.TextValue)] if "TextValue" in ds else []
    for item in ds.get("ContentSequence", []):
        out.extend(_text_values(item))
    return out


def test_empty_findings_say_nothing_found(
    ct: list[Dataset], algorithm: Algorithm, tmp_path: Path
) -> None:
    geo = geometry_from_datasets(ct)
    findings = Findings(
        kinds=("lung_nodule",), masks=(Mask("lung_nodule", np.zeros(geo.shape, bool), geo),)
    )
    outputs = encode(findings, ct, algorithm=algorithm, uid_root=ROOT)
    assert [ds.Modality for ds in outputs] == ["SR", "OT"]  # no SEG
    sr = outputs[0]
    verify(sr, tmp_path, "SR-empty")
    report = _report(sr, tmp_path)
    assert report.get_volumetric_roi_measurement_groups() == []
    (group,) = report.get_image_measurement_groups()
    assert group.tracking_identifier == "No lung nodule found"
    (evaluation,) = [q for q in group.get_qualitative_evaluations() if q.name == codes.SCT.Nodule]
    assert evaluation.value == codes.SCT.Absent


def test_mammo_classification_round_trip(algorithm: Algorithm, tmp_path: Path) -> None:
    mg = mammo_study()
    probabilities = tuple(
        ClassProbability(c, p) for c, p in zip("ABCD", (0.1, 0.2, 0.6, 0.1), strict=True)
    )
    items = (
        Classification(
            "breast_assessment", "L", score=0.23, density="C", probabilities=probabilities
        ),
        Classification("breast_assessment", "R", score=0.81, density="B"),
    )
    findings = Findings(kinds=("breast_assessment",), classifications=items)
    alg = Algorithm("mammo_score", "0.3.0", "cd" * 32)
    sr, summary = encode(findings, mg, algorithm=alg, uid_root=ROOT)
    verify(sr, tmp_path, "SR-mammo")
    groups = _report(sr, tmp_path).get_image_measurement_groups()
    assert len(groups) == 2
    density = {"B": codes.SCT.ScatteredFibroglandularDensities, "C": codes.SCT.HeterogeneouslyDense}
    sides = {"L": codes.SCT.Left, "R": codes.SCT.Right}
    for item, group in zip(items, groups, strict=True):
        site = group.finding_sites[0]
        assert site.value == codes.SCT.Breast
        assert site.laterality == sides[item.laterality.value]
        assert _measurements(group)["111047"] == (pytest.approx(item.score), "1")
        (composition,) = [
            q for q in group.get_qualitative_evaluations() if q.name == codes.SCT.BreastComposition
        ]
        assert composition.value == density[item.density.value]
        referenced = {
            str(ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            for ref in group[0].ContentSequence
            if ref.ValueType == "IMAGE"
        }
        expected = {
            str(ds.SOPInstanceUID) for ds in mg if ds.ImageLaterality == item.laterality.value
        }
        assert referenced == expected
    assert summary.Modality == "OT"


def test_uids_deterministic_and_predecessor(
    ct: list[Dataset], algorithm: Algorithm, tmp_path: Path
) -> None:
    findings = Findings(kinds=("lung_nodule",), regions=_regions(ct)[:1])
    (first,) = encode(findings, ct, algorithm=algorithm, outputs=["sr"], uid_root=ROOT)
    (again,) = encode(findings, ct, algorithm=algorithm, outputs=["sr"], uid_root=ROOT)
    assert first.SOPInstanceUID == again.SOPInstanceUID
    assert first.SeriesInstanceUID == again.SeriesInstanceUID
    (rerun,) = encode(
        findings,
        ct,
        algorithm=algorithm,
        outputs=["sr"],
        uid_root=ROOT,
        predecessor=Predecessor.from_dataset(first),
    )
    verify(rerun, tmp_path, "SR")
    assert rerun.SOPInstanceUID != first.SOPInstanceUID
    ref = rerun.PredecessorDocumentsSequence[0]
    assert ref.StudyInstanceUID == first.StudyInstanceUID
    series = ref.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID


def test_sr_labels(ct: list[Dataset], algorithm: Algorithm) -> None:
    (sr,) = encode(
        Findings(kinds=("lung_nodule",)), ct, algorithm=algorithm, outputs=["sr"], uid_root=ROOT
    )
    assert sr.SeriesDescription == "lung_nodule 1.2.0 SR RESEARCH USE ONLY"
    assert sr.Manufacturer == sr.ManufacturerModelName == "dicomnode"
    assert sr.StudyInstanceUID == ct[0].StudyInstanceUID
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"

"""Orthanc as the PACS, end to end, with the three real pipelines.

A chest CT, a FLAIR brain MR and a 4-view mammogram are uploaded to Orthanc over REST; Orthanc
sends each to the node (``/modalities/node/store``, a PACS user's "send to node"); the node
routes, runs ``lung_nodule``, ``brain_lesion`` and ``mammo_score`` (study level) and sends its
SEG/SR/summary objects back to Orthanc. The tests read them from Orthanc and check study
membership, that highdicom parses them, the findings they carry and ``dciodvfy``.

One scenario runs per module (a fixture); each test checks one aspect of its outcome.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomnode.demo.orthanc import Orthanc
from dicomnode.results import Laterality, findings_from_sr
from dicomnode.synthetic import brain_mr, chest_ct, mammography, write_study
from testkit.nodeproc import NodeProcess, free_port
from testkit.orthanc import discard

DCIODVFY = shutil.which("dciodvfy", path="/usr/bin") or shutil.which("dciodvfy")
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
WAIT_SECONDS = 240  # bound on the whole round trip (about 15 s on 2 CPU cores)
# held-out seeds (training uses lower ones); small studies the pipelines still accept
CT_SEED, MR_SEED, MG_SEED = 9301, 9302, 9303


def _routes(pacs_port: int) -> dict[str, Any]:
    return {
        "destinations": {"pacs": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port}},
        "routes": [
            {
                "name": "chest-ct-nodules",
                "pipeline": "lung_nodule",
                "when": {
                    "Modality": "CT",
                    "BodyPartExamined": ["CHEST", "LUNG"],
                    "instances": {"min": 16},
                },
                "send_to": ["pacs"],
            },
            {
                "name": "brain-flair-lesions",
                "pipeline": "brain_lesion",
                "when": {"Modality": "MR", "SeriesDescription": {"regex": "(?i)flair"}},
                "send_to": ["pacs"],
            },
            {
                "name": "screening-mammo",
                "pipeline": "mammo_score",
                "level": "study",
                "when": {"Modality": "MG"},
                "send_to": ["pacs"],
            },
        ],
        "workers": {"count": 1, "device": "cpu"},
    }


@dataclass
class Sent:
    """One study sent from Orthanc to the node, and the results Orthanc holds afterwards."""

    pipeline: str
    study_uid: str
    sources: list[Dataset]
    truth: Any
    results: dict[str, list[Dataset]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def source_uids(self) -> set[str]:
        return {str(ds.SOPInstanceUID) for ds in self.sources}


@dataclass
class Scenario:
    node: NodeProcess
    pacs: Orthanc
    studies: dict[str, Sent]
    jobs: list[tuple[Any, ...]]


def _generate() -> dict[str, Sent]:
    ct = chest_ct(CT_SEED, shape=(96, 96, 48), n_nodules=2, diameter_range_mm=(8, 16))
    mr = brain_mr(MR_SEED, shape=(64, 64, 32), n_lesions=2, radius_range_mm=(4, 7))
    mg = mammography(MG_SEED, shape=(256, 208), masses={"L": 1})
    return {
        "lung_nodule": Sent("lung_nodule", ct.datasets[0].StudyInstanceUID, ct.datasets, ct),
        "brain_lesion": Sent("brain_lesion", mr.datasets[0].StudyInstanceUID, mr.datasets, mr),
        "mammo_score": Sent("mammo_score", mg.datasets[0].StudyInstanceUID, mg.datasets, mg),
    }


def _wait_for_jobs(node: NodeProcess, expected: int) -> list[tuple[Any, ...]]:
    """Jobs rows once ``expected`` jobs exist and they and their deliveries are final."""
    deadline = time.monotonic() + WAIT_SECONDS
    jobs: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        if node.proc is not None and node.proc.poll() is not None:
            raise AssertionError(f"node exited:\n{node.log_text()[-3000:]}")
        jobs = node.query("select id, pipeline, state, study_uid, error from jobs order by id")
        open_deliveries = node.query(
            "select count(*) from deliveries where state not in ('delivered', 'dead')"
        )[0][0]
        final = all(row[2] in ("succeeded", "dead", "refused") for row in jobs)
        if len(jobs) >= expected and final and open_deliveries == 0:
            return jobs
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for results; jobs: {jobs}\n{node.log_text()[-3000:]}")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("orthanc-e2e")
    pacs_port = free_port()
    node = NodeProcess(root / "node", _routes(pacs_port))
    pacs = Orthanc(
        root / "orthanc",
        modalities={"node": ("DICOMNODE", "127.0.0.1", node.port)},
        dicom_port=pacs_port,
    )
    studies = _generate()
    try:
        node.start(timeout=60)
        pacs.start()
        orthanc_ids = {}
        for name, sent in studies.items():
            files = write_study(sent.sources, root / "upload" / name)
            (orthanc_ids[name],) = pacs.upload(files)
        for name in studies:  # one "send to node" per study, as a user would click
            pacs.send_study("node", orthanc_ids[name])
        jobs = _wait_for_jobs(node, expected=len(studies))
        for name, sent in studies.items():
            for item in pacs.results_of_study(sent.study_uid, exclude=sent.source_uids):
                data = pacs.file(item["ID"])
                ds = pydicom.dcmread(BytesIO(data))
                path = root / "results" / name / f"{ds.Modality}_{ds.SOPInstanceUID}.dcm"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                sent.results.setdefault(str(ds.Modality), []).append(ds)
                sent.files.append(path)
        yield Scenario(node, pacs, studies, jobs)
    finally:
        discard(pacs)
        node.stop()


def test_every_pipeline_succeeded_and_delivered_once(scenario: Scenario) -> None:
    by_pipeline = {row[1]: row for row in scenario.jobs}
    assert sorted(by_pipeline) == sorted(scenario.studies), scenario.jobs
    assert len(scenario.jobs) == 3, scenario.jobs
    for name, sent in scenario.studies.items():
        job_id, _, state, study_uid, error = by_pipeline[name]
        assert state == "succeeded", f"{name}: {state}: {error}"
        assert study_uid == sent.study_uid
    dead = scenario.node.query("select count(*) from deliveries where state = 'dead'")
    assert dead == [(0,)]
    # Orthanc holds exactly the results the node recorded: no duplicates, none missing.
    for sent in scenario.studies.values():
        recorded = scenario.node.query(
            f"select sop_instance_uid from job_results where study_uid = '{sent.study_uid}'"
        )
        held = {str(ds.SOPInstanceUID) for items in sent.results.values() for ds in items}
        assert held == {row[0] for row in recorded}


@pytest.mark.parametrize("pipeline", ["lung_nodule", "brain_lesion", "mammo_score"])
def test_results_belong_to_the_study_and_are_research_labelled(
    scenario: Scenario, pipeline: str
) -> None:
    sent = scenario.studies[pipeline]
    assert set(sent.results) >= {"SR", "OT"}, f"{pipeline}: got {sorted(sent.results)}"
    assert len(sent.results["SR"]) == 1 and len(sent.results["OT"]) == 1
    source_series = {str(ds.SeriesInstanceUID) for ds in sent.sources}
    for items in sent.results.values():
        for ds in items:
            assert ds.StudyInstanceUID == sent.study_uid
            assert ds.SeriesInstanceUID not in source_series  # a new series in the same study
            assert ds.SOPInstanceUID not in sent.source_uids
            assert pipeline in ds.SeriesDescription
            assert "RESEARCH" in ds.SeriesDescription.upper()


@pytest.mark.parametrize("pipeline", ["lung_nodule", "brain_lesion", "mammo_score"])
def test_results_pass_dciodvfy(scenario: Scenario, pipeline: str) -> None:
    assert DCIODVFY is not None, "dciodvfy is missing (scripts/setup.sh installs dicom3tools)"
    files = scenario.studies[pipeline].files
    assert files
    for path in files:
        run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
        lines = (run.stdout + run.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        assert not errors, f"{path.name}:\n" + "\n".join(errors)


def _sr(sent: Sent) -> hd.sr.MeasurementReport:
    (path,) = [p for p in sent.files if p.name.startswith("SR_")]
    document = hd.sr.srread(path)
    assert isinstance(document, hd.sr.Comprehensive3DSR)
    assert document.SOPClassUID == SR_CLASS
    content = document.content
    assert isinstance(content, hd.sr.MeasurementReport)
    return content


def _check_seg(sent: Sent) -> None:
    for path in (p for p in sent.files if p.name.startswith("SEG_")):
        seg = hd.seg.segread(path)
        assert seg.SOPClassUID == SEG_CLASS
        assert seg.number_of_segments >= 1
        referenced = {str(item.SeriesInstanceUID) for item in seg.ReferencedSeriesSequence}
        assert referenced == {str(sent.sources[0].SeriesInstanceUID)}


def test_lung_nodule_sr_and_seg(scenario: Scenario) -> None:
    sent = scenario.studies["lung_nodule"]
    report = _sr(sent)
    groups = report.get_volumetric_roi_measurement_groups()
    image_groups = report.get_image_measurement_groups()
    assert groups or image_groups  # nodules, or an explicit "no lung nodule found"
    _check_seg(sent)
    (path,) = [p for p in sent.files if p.name.startswith("SR_")]
    findings = findings_from_sr(pydicom.dcmread(path))
    assert [kind.value for kind in findings.kinds] == ["lung_nodule"]
    if findings.regions:  # loosely: some reported nodule lies near a true one
        truth = np.array([nodule.centre_mm for nodule in sent.truth.nodules])
        nearest = min(
            float(np.linalg.norm(truth - np.asarray(region.center), axis=1).min())
            for region in findings.regions
        )
        assert nearest < 20.0, f"no reported nodule within 20 mm of a true one ({nearest:.1f})"


def test_brain_lesion_sr_and_seg(scenario: Scenario) -> None:
    sent = scenario.studies["brain_lesion"]
    report = _sr(sent)
    assert report.get_volumetric_roi_measurement_groups() or report.get_image_measurement_groups()
    (path,) = [p for p in sent.files if p.name.startswith("SR_")]
    findings = findings_from_sr(pydicom.dcmread(path))
    assert [kind.value for kind in findings.kinds] == ["brain_lesion"]
    _check_seg(sent)


def test_mammo_sr_has_one_assessment_per_breast(scenario: Scenario) -> None:
    sent = scenario.studies["mammo_score"]
    assert "SEG" not in sent.results
    report = _sr(sent)
    assert len(report.get_image_measurement_groups()) == 2
    (path,) = [p for p in sent.files if p.name.startswith("SR_")]
    findings = findings_from_sr(pydicom.dcmread(path))
    sides = {item.laterality: item for item in findings.classifications}
    assert set(sides) == {Laterality.LEFT, Laterality.RIGHT}
    for side, item in sides.items():
        assert item.density is not None
        assert item.score is not None and 0.0 <= item.score <= 1.0
        expected = {str(ds.SOPInstanceUID) for ds in sent.sources if ds.ImageLaterality == side}
        assert set(item.sop_instance_uids) == expected

"""The issue 17 round trips with the real pipelines and the demo weights: Orthanc holds the
prior of a synthetic follow-up pair; the current study is sent to the node, which finds the
prior at Orthanc, retrieves it, compares, and sends its SR to Orthanc. For the chest CT the SR
there reports the volume doubling times of the grown nodules within 15 % of the truth and flags
the new and the resolved one; for the brain FLAIR its new and enlarging lesions match the
truth's counts exactly. One node and one Orthanc serve both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicomnode.demo.orthanc import Orthanc
from dicomnode.results import findings_from_sr
from dicomnode.results.codes import CHANGE_CODES
from dicomnode.synthetic import write_study
from dicomnode.synthetic.followup import ChangeStatus, ChestCTPair, brain_mr_pair, chest_ct_pair
from testkit.nodeproc import NodeProcess, free_port, storescu
from testkit.orthanc import discard

PAIR_SEED = 31  # the pair of tests/pipelines/test_followup_lung.py
MR_PAIR_SEED = 41  # the pair of tests/pipelines/test_followup_brain.py
WAIT_SECONDS = 400  # two detections on 2 CPU cores: about 90 s
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"


def _config(pacs_port: int) -> dict[str, Any]:
    pacs = {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port}
    return {
        "sources": {"pacs": pacs},
        "destinations": {"pacs": pacs},
        "stability": {"series_seconds": 1, "study_seconds": 1.5},
        "pipelines": {"lung_nodule": {"threshold": 0.3}},
        "routes": [
            {
                "name": "chest-ct-follow-up",
                "pipeline": "lung_nodule",
                "when": {"Modality": "CT", "BodyPartExamined": "CHEST"},
                "send_to": ["pacs"],
                "outputs": ["sr"],
                "priors": {"from": ["pacs"], "modality": "CT", "lookback": "5y", "timeout": 60},
            },
            {
                "name": "brain-flair-follow-up",
                "pipeline": "brain_lesion",
                "when": {"Modality": "MR", "SeriesDescription": {"regex": "(?i)flair"}},
                "send_to": ["pacs"],
                "outputs": ["sr"],
                "priors": {"from": ["pacs"], "modality": "MR", "lookback": "5y", "timeout": 60},
            },
        ],
        "workers": {"count": 1, "device": "cpu", "poll_seconds": 0.2},
    }


def _sr_at_orthanc(pacs: Orthanc, node: NodeProcess, study_uid: str) -> pydicom.Dataset:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if node.proc is not None and node.proc.poll() is not None:
            raise AssertionError(f"node exited:\n{node.log_text()[-3000:]}")
        for item in pacs.instances_of_study(study_uid):
            data = pacs.file(item["ID"])
            ds = pydicom.dcmread(BytesIO(data))
            if str(ds.SOPClassUID) == SR_CLASS:
                return ds
        jobs = node.query("select state, error from jobs")
        assert all(state not in ("dead", "refused") for state, _ in jobs), jobs
        time.sleep(1.0)
    raise AssertionError(f"no SR at Orthanc; jobs {node.query('select state, error from jobs')}")


@pytest.fixture(scope="module")
def pair() -> ChestCTPair:
    return chest_ct_pair(PAIR_SEED)


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, Orthanc]]:
    """The node and Orthanc, its PACS and source of priors."""
    tmp = tmp_path_factory.mktemp("followup")
    pacs_port = free_port()
    node = NodeProcess(tmp / "node", _config(pacs_port))
    pacs = Orthanc(
        tmp / "orthanc",
        modalities={"node": ("DICOMNODE", "127.0.0.1", node.port)},
        dicom_port=pacs_port,
    )
    try:
        node.start(timeout=60)
        pacs.start()
        yield node, pacs
    finally:
        discard(pacs)
        node.stop()


def _round_trip(
    peers: tuple[NodeProcess, Orthanc],
    prior: list[pydicom.Dataset],
    current: list[pydicom.Dataset],
    tmp_path: Path,
) -> pydicom.Dataset:
    """Prior into Orthanc, current to the node: the node's SR for it, from Orthanc."""
    node, pacs = peers
    pacs.upload(write_study(prior, tmp_path / "prior"))
    sent = storescu(node.port, write_study(current, tmp_path / "current"), aet="MODALITY")
    assert sent.returncode == 0, sent.stderr
    sr = _sr_at_orthanc(pacs, node, str(current[0].StudyInstanceUID))
    kinds = [k for (k,) in node.query("select kind from audit_events where kind like 'priors.%'")]
    assert "priors.retrieved" in kinds, kinds
    assert sr.PertinentOtherEvidenceSequence[0].StudyInstanceUID == prior[0].StudyInstanceUID
    return sr


def _statuses(sr: pydicom.Dataset) -> list[str]:
    """The CHANGE value (code) of each change group of ``sr``."""
    report = hd.sr.Comprehensive3DSR.from_dataset(sr, copy=False).content
    return [
        str(q.value.value)
        for g in report.get_image_measurement_groups()
        if g.tracking_identifier.endswith("change")
        for q in g.get_qualitative_evaluations()
        if q.name.value == "CHANGE"
    ]


def test_mr_pair_new_and_enlarging_lesions_exact(
    peers: tuple[NodeProcess, Orthanc], tmp_path: Path
) -> None:
    pair = brain_mr_pair(MR_PAIR_SEED)
    sr = _round_trip(peers, pair.prior.datasets, pair.current.datasets, tmp_path)
    found = _statuses(sr)
    assert found.count(CHANGE_CODES["new"].value) == pair.count(ChangeStatus.NEW) == 2, found
    assert found.count(CHANGE_CODES["enlarging"].value) == pair.count(ChangeStatus.GROWN), found
    assert found.count(CHANGE_CODES["resolved"].value) == 0, found


def test_sr_at_orthanc_reports_doubling_times_and_new_nodule(
    pair: ChestCTPair, peers: tuple[NodeProcess, Orthanc], tmp_path: Path
) -> None:
    sr = _round_trip(peers, pair.prior.datasets, pair.current.datasets, tmp_path)
    centres = {r.tracking_id: np.asarray(r.center) for r in findings_from_sr(sr).regions}
    report = hd.sr.Comprehensive3DSR.from_dataset(sr, copy=False).content
    groups = {g.tracking_identifier: g for g in report.get_image_measurement_groups()}

    def change_of(
        centre: tuple[float, float, float],
    ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
        distance = {t: float(np.linalg.norm(c - np.asarray(centre))) for t, c in centres.items()}
        tracking = min(distance, key=distance.__getitem__)
        assert distance[tracking] <= 5.0, (centre, distance)
        return groups[f"{tracking} change"]

    def status(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> str:
        (item,) = [q for q in group.get_qualitative_evaluations() if q.name.value == "CHANGE"]
        return str(item.value.value)

    errors = []
    for truth in pair.changes:
        if truth.status is ChangeStatus.GROWN:
            group = change_of(truth.current.centre_mm)
            assert status(group) == "35105006"  # SCT Increased
            (vdt,) = [float(m.value) for m in group.get_measurements() if m.name.value == "VDT"]
            expected = truth.doubling_time_days(pair.interval_days)
            errors.append(abs(vdt - expected) / expected)
        elif truth.status is ChangeStatus.NEW:
            assert status(change_of(truth.current.centre_mm)) == "7147002"  # SCT New
    assert errors and max(errors) <= 0.15, errors
    print(f"VDT relative errors at Orthanc: {', '.join(f'{e:.1%}' for e in errors)}")
    resolved = [
        g for g in groups.values() if "change" in g.tracking_identifier and status(g) == "RESOLVED"
    ]
    assert len(resolved) == 1

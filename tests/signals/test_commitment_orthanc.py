"""Orthanc sends a study with Storage Commitment: the node reports success on a new association
to Orthanc (a configured source), and the study completes and is queued long before its timer."""

from __future__ import annotations

from datetime import datetime

import pytest

from dicomnode.demo.orthanc import Orthanc
from dicomnode.demo.processes import free_port
from testkit import dicomgen
from testkit.nodeproc import TOY_PIPELINE, wait_for
from testkit.orthanc import discard


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
def orthanc_and_node(node_factory, tmp_path):
    orthanc_port = free_port()
    orthanc = {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc_port}
    node = node_factory(
        stability={"series_seconds": 60, "study_seconds": 120},
        sources={"pacs": orthanc},
        destinations={"pacs": orthanc},
        pipelines={"toy": {"class": TOY_PIPELINE}},
        routes=[
            {"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "send_to": ["pacs"]}
        ],
    )
    pacs = Orthanc(
        tmp_path / "orthanc",
        modalities={"node": ("DICOMNODE", "127.0.0.1", node.port)},
        dicom_port=orthanc_port,
    )
    node.start()
    pacs.start()
    yield pacs, node
    discard(pacs)


def test_orthanc_storage_commitment_completes_the_study_at_once(orthanc_and_node, tmp_path):
    pacs, node = orthanc_and_node
    specs = dicomgen.study("orthanc-commit", [5, 3])
    files = [p for spec in specs for p in dicomgen.write_series(spec, tmp_path / spec.series_uid)]
    (study_id,) = pacs.upload(files)
    answer = pacs.post(
        "/modalities/node/store",
        {"Resources": [study_id], "Synchronous": True, "StorageCommitment": True},
    )
    transaction = answer["StorageCommitmentTransactionUID"]

    def reported() -> dict | None:
        state = pacs.get(f"/storage-commitment/{transaction}")
        return state if state["Status"] != "Pending" else None

    state = wait_for(reported, "Orthanc to receive the commitment result", 10)
    assert state["Status"] == "Success", state
    assert len(state["Success"]) == len(files) and not state["Failures"]

    def queued() -> list[tuple[str, str]]:
        rows = node.query("select subject, created_at from jobs where route = 'ct-toy'")
        return rows if len(rows) == len(specs) else []

    jobs = wait_for(queued, "a job per series", 10)
    assert {subject for subject, _ in jobs} == {spec.series_uid for spec in specs}
    series = node.query("select state, completed_by, completed_at from series")
    assert {(state, by) for state, by, _ in series} == {("complete", "commitment")}
    assert node.query("select state, completed_by from studies") == [("complete", "commitment")]
    # From the last instance received to the study complete and its jobs queued: well within
    # the 60 s timer (figures in the commit message).
    (last,) = node.query("select max(received_at) from instances")[0]
    completed = max(_at(at) for _, _, at in series)
    queued_at = max(_at(at) for _, at in jobs)
    assert (completed - _at(last)).total_seconds() < 10
    assert (queued_at - _at(last)).total_seconds() < 10
    kinds = node.query(
        "select kind, detail from audit_events where kind like 'commitment.%' order by id"
    )
    assert [k for k, _ in kinds] == ["commitment.requested", "commitment.reported"]
    assert "new association" in kinds[1][1]

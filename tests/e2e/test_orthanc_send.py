"""Orthanc as the PACS: a user's "send to node" from Orthanc reaches the node's store."""

from __future__ import annotations

import json

import pytest
from pydicom import dcmread

from dicomnode.demo.orthanc import Orthanc
from testkit import dicomgen
from testkit.orthanc import discard


@pytest.fixture
def orthanc_and_node(node_factory, tmp_path):
    node = node_factory()
    pacs = Orthanc(tmp_path / "orthanc", modalities={"node": ("DICOMNODE", "127.0.0.1", node.port)})
    node.start()
    pacs.start()
    yield pacs, node
    discard(pacs)


def test_orthanc_send_to_node_stores_every_instance(orthanc_and_node, tmp_path):
    pacs, node = orthanc_and_node
    specs = dicomgen.study("orthanc", [6, 4])
    files = [p for spec in specs for p in dicomgen.write_series(spec, tmp_path / spec.series_uid)]
    (study_id,) = pacs.upload(files)
    pacs.send_study("node", study_id)
    rows = node.query("select sop_instance_uid from instances")
    assert {r[0] for r in rows} == {dcmread(p).SOPInstanceUID for p in files}
    status = json.loads(node.cli("status", "--json").stdout)
    assert sorted(s["instances"] for s in status) == [4, 6]
    # Sent again (the user clicks twice): no new instance, nothing superseded.
    pacs.send_study("node", study_id)
    assert node.query("select count(*) from instances") == [(len(files),)]
    assert node.query("select count(*) from audit_events where kind = 'instance.superseded'") == [
        (0,)
    ]

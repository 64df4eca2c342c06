"""The SCP tells ``on_released`` what a *released* association stored; an aborted one is
forgotten (its studies are left to the timers). In-process SCP, pynetdicom as the sender."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicomnode.config.schema import NodeConfig
from dicomnode.net.scp import Delivery, StorageSCP, configure_pynetdicom
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from testkit import dicomgen
from testkit.nodeproc import free_port


@pytest.fixture
def scp(tmp_path: Path):
    configure_pynetdicom()
    store = Store(
        tmp_path / "store", open_database(f"sqlite:///{tmp_path / 'state.db'}"), min_free=0
    )
    told: queue.Queue[Delivery] = queue.Queue()
    node = StorageSCP(NodeConfig(host="127.0.0.1", port=free_port()), store, on_released=told.put)
    node.start()
    yield node, told
    node.stop()


def _store(port: int, name: str, counts: list[int], *, abort: bool) -> list[dicomgen.SeriesSpec]:
    specs = dicomgen.study(name, counts)
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
    assert assoc.is_established
    for spec in specs:
        for ds in dicomgen.series(spec):
            assert int(assoc.send_c_store(ds).Status) == 0
    if abort:
        assoc.abort()
    else:
        assoc.release()
    return specs


def test_released_association_reports_its_studies_and_series(scp):
    node, told = scp
    specs = _store(node.port, "released", [2, 1], abort=False)
    delivery = told.get(timeout=5)
    assert delivery.studies == {specs[0].study_uid}
    assert delivery.series == {spec.series_uid for spec in specs}
    assert delivery.peer.startswith("SENDER@")
    assert node._delivered == {}


def test_aborted_association_is_forgotten_and_not_reported(scp):
    node, told = scp
    _store(node.port, "aborted", [2], abort=True)
    deadline = time.monotonic() + 5
    while node._delivered and time.monotonic() < deadline:  # until the abort is handled
        time.sleep(0.05)
    assert node._delivered == {}
    assert told.empty()
    # an association that stores nothing reports nothing either
    ae = AE(ae_title="ECHOER")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")
    assert assoc.is_established and int(assoc.send_c_echo().Status) == 0
    assoc.release()
    specs = _store(node.port, "after", [1], abort=False)
    assert told.get(timeout=5).studies == {specs[0].study_uid}  # the next report is this one

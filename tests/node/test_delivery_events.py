"""The SCP tells ``on_released`` what a *released* association stored; an aborted one is
forgotten (its studies are left to the timers). In-process SCP, pynetdicom as the sender."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicomnode.net.scp import Delivery
from testkit import dicomgen
from testkit.inprocess import storage_scp


@pytest.fixture
def scp(tmp_path: Path):
    told: queue.Queue[Delivery] = queue.Queue()
    node = storage_scp(tmp_path, on_released=told.put)
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


def test_connection_closed_before_the_release_is_told_keeps_the_deliveries(tmp_path: Path):
    """The peer closes as soon as it has the A-RELEASE-RP: the DUL thread can handle that
    close (EVT_CONN_CLOSE) before the association thread tells the release (EVT_RELEASED).
    Forced here: the release handler waits until the close handler has run."""
    told: queue.Queue[Delivery] = queue.Queue()
    node = storage_scp(tmp_path, on_released=told.put)
    order: list[str] = []
    closed = threading.Event()
    on_closed, on_released = node._on_closed, node._on_released

    def close_first(event: Any) -> None:
        on_closed(event)
        order.append("closed")
        closed.set()

    def release_after_close(event: Any) -> None:
        closed.wait(10)
        order.append("released")
        on_released(event)

    node._on_closed = close_first  # type: ignore[method-assign]
    node._on_released = release_after_close  # type: ignore[method-assign]
    node.start()
    try:
        specs = _store(node.port, "close-first", [2, 1], abort=False)
        delivery = told.get(timeout=10)
    finally:
        node.stop()
    assert order == ["closed", "released"]
    assert delivery.studies == {specs[0].study_uid}
    assert delivery.series == {spec.series_uid for spec in specs}

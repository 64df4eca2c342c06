"""Slot holding and total handlers: what a peer can send gets a status, an alert or an abort.

Each test runs a real node and talks to it over loopback, with pynetdicom or raw PDUs. The
tests of the total handlers share one node on the defaults; each checks what the node recorded
and logged meanwhile (:class:`testkit.since.Since`).
"""

from __future__ import annotations

import socket
import time

import pytest
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from testkit import dicomgen
from testkit.hostile import associate_rq, pdu_header, read_until_closed
from testkit.nodeproc import NodeProcess, echo
from testkit.since import Since


def _associate(node, ae_title: str, *, called: str = "DICOMNODE"):
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    return ae.associate("127.0.0.1", node.port, ae_title=called)


def _audit(node: NodeProcess | Since, kind: str, *, expect: int = 0) -> list[tuple[str, str]]:
    """Audit rows of ``kind`` (of a :class:`Since`: those recorded since it began)."""
    view = node if isinstance(node, Since) else Since.everything(node)
    return view.audit(kind, expect=expect)


def _store_one(assoc, name: str) -> int:
    (ds,) = dicomgen.series(dicomgen.study(name, [1])[0])
    return int(assoc.send_c_store(ds).Status)


# -- slot holding --------------------------------------------------------------------------


def test_one_peer_holds_at_most_its_share_of_the_slots(node_factory):
    node = node_factory(node={"max_associations": 4}).start()  # per peer: 2 by default
    held = [_associate(node, "HOLDER") for _ in range(2)]
    assert all(a.is_established for a in held)
    third = _associate(node, "HOLDER")
    assert third.is_rejected
    ((peer, detail),) = _audit(node, "security.alert", expect=1)
    assert peer == "HOLDER@127.0.0.1"
    assert detail == "rejected: per-peer association limit of 2 reached"
    # Another sender gets a slot at once, and stores.
    started = time.monotonic()
    sender = _associate(node, "SENDER")
    assert sender.is_established and time.monotonic() - started < 3
    assert _store_one(sender, "share") == 0
    sender.release()
    for assoc in held:
        assoc.release()


def test_silent_associations_are_aborted_at_the_first_message_timeout(node_factory):
    node = node_factory(
        node={
            "max_associations": 2,
            "max_associations_per_peer": 2,
            "first_message_timeout": 1,
            "allow": [{"ae_title": "HOLDER"}, {"ae_title": "SENDER"}],
        }
    ).start()
    held = [_associate(node, "HOLDER") for _ in range(2)]
    assert all(a.is_established for a in held)
    # Every slot is held by a peer that never sends a DIMSE request: the allow-listed sender
    # is refused until the holder's associations are aborted, then served.
    started = time.monotonic()
    sender = None
    while time.monotonic() - started < 10:
        sender = _associate(node, "SENDER")
        if sender.is_established:
            break
        time.sleep(0.2)
    served_after = time.monotonic() - started
    assert sender is not None and sender.is_established
    assert served_after < 3, f"served after {served_after:.1f} s"
    assert _store_one(sender, "silent") == 0
    sender.release()
    aborted = _audit(node, "association.aborted", expect=2)
    assert aborted == [("HOLDER@127.0.0.1", "no DIMSE request within 1 s")] * 2
    deadline = time.monotonic() + 5
    while any(a.is_established for a in held) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [a.is_aborted for a in held] == [True, True]


def test_an_association_that_spoke_is_not_aborted_by_the_first_message_timer(node_factory):
    node = node_factory(node={"first_message_timeout": 1}).start()
    assoc = _associate(node, "TALKER")
    assert _store_one(assoc, "talker-1") == 0
    time.sleep(2)
    assert assoc.is_established
    assert _store_one(assoc, "talker-2") == 0
    assoc.release()
    assert _audit(node, "association.aborted") == []


# -- total handlers ------------------------------------------------------------------------


def _assert_no_traceback(node: Since) -> None:
    log = node.log_text()
    assert "Traceback" not in log and '"exception"' not in log, log[-3000:]


def test_c_store_without_a_data_set_gets_a_status(shared_node):
    node = Since(shared_node)
    assoc = _associate(node, "NODATA")
    assert assoc.is_established
    request = C_STORE()
    request.MessageID = 7
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.9.3811.99.1"
    request.Priority = 2
    context = assoc._get_valid_context(CTImageStorage, "", "scu")
    # As pynetdicom's own send_c_store does: pause the reactor so the response is ours.
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.001)
    assoc.dimse.send_msg(request, context.context_id)
    _, response = assoc.dimse.get_msg(block=True)
    assoc._reactor_checkpoint.set()
    assert response is not None and response.Status == 0xC000
    assoc.release()
    ((peer, detail),) = _audit(node, "store.failed", expect=1)
    assert peer == "NODATA@127.0.0.1"
    assert detail == "0xC000 C-STORE request without a data set"
    _assert_no_traceback(node)


@pytest.mark.parametrize("service", ["N-ACTION", "N-CREATE", "N-GET"])
def test_normalized_requests_on_a_storage_context_get_a_status(shared_node, service):
    node = Since(shared_node)
    assoc = _associate(node, "NSERVICE")
    assoc.dimse_timeout = 3
    uid = "1.2.826.0.1.3680043.9.3811.99.2"
    (ds,) = dicomgen.series(dicomgen.study("nservice", [1])[0])
    # The node answers (a C-STORE response, which pynetdicom's N-service call does not take
    # for its own: it waits out the DIMSE timeout); what matters is the node's side.
    if service == "N-ACTION":
        assoc.send_n_action(ds, 1, CTImageStorage, uid)
    elif service == "N-CREATE":
        assoc.send_n_create(ds, CTImageStorage, uid)
    else:
        assoc.send_n_get([0x00100010], CTImageStorage, uid)
    ((peer, detail),) = _audit(node, "store.failed", expect=1)
    assert peer == "NSERVICE@127.0.0.1"
    assert detail == f"0x0211 {service} on a storage context"
    if assoc.is_established:
        assoc.abort()
    _assert_no_traceback(node)


@pytest.mark.parametrize(
    ("calling", "shown"),
    [
        (b"NUL\x00AE", r"'NUL\x00AE'"),
        (b"BELL\x07", r"'BELL\x07'"),
        (b"BACK\\SLASH", r"'BACK\\SLASH'"),
        (b"CAF\xc9", r"'CAF\\xc9'"),
    ],
    ids=["nul", "control", "backslash", "non-ascii"],
)
def test_invalid_ae_titles_are_one_alert_and_one_line(shared_node, calling, shown):
    node = Since(shared_node)
    request = bytearray(associate_rq("PLACEHOLDER"))
    request[26:42] = calling.ljust(16, b" ")  # the calling AE title field (PS3.8 9.3.2)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as raw:
        raw.sendall(bytes(request))
        reply = read_until_closed(raw, timeout=5)
    assert reply[:1] == b"\x07", f"expected an A-ABORT, got {reply[:10]!r}"
    ((peer, detail),) = _audit(node, "security.alert", expect=1)
    assert peer == "?@127.0.0.1"
    assert (
        detail
        == f"A-ASSOCIATE-RQ with an invalid calling AE title: called 'DICOMNODE', calling {shown}"
    )
    lines = [ln for ln in node.log_text().splitlines() if "AE title" in ln]
    assert len(lines) == 1, lines
    _assert_no_traceback(node)


def test_wrong_called_ae_alert_names_both_titles(shared_node):
    node = Since(shared_node)
    assoc = _associate(node, "MODALITY1", called="OTHERNODE")
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.result_source == 0x01
    assert assoc.acceptor.primitive.diagnostic == 0x07  # called AE title not recognized
    ((peer, detail),) = _audit(node, "security.alert", expect=1)
    assert peer == "MODALITY1@127.0.0.1"
    assert "'OTHERNODE'" in detail and "'DICOMNODE'" in detail and "'MODALITY1'" in detail


def test_pynetdicom_tracebacks_stay_out_of_the_log(shared_node):
    """A DIMSE command that does not decode: pynetdicom logs an exception; one line remains."""
    node = Since(shared_node)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as raw:
        raw.sendall(associate_rq("GARBLED"))
        accept = raw.recv(6)
        assert accept[:1] == b"\x02"
        length = int.from_bytes(accept[2:6], "big")
        while length:
            length -= len(raw.recv(length))
        garbage = b"\x03" + bytes(range(40))  # last command fragment, not a command set
        pdv = len(garbage) + 1
        raw.sendall(pdu_header(0x04, pdv + 4) + pdv.to_bytes(4, "big") + b"\x01" + garbage)
        started = time.monotonic()
        reply = read_until_closed(raw, timeout=10)
        closed_after = time.monotonic() - started
    assert reply[:1] == b"\x07" and closed_after < 5  # aborted, not left to the network timeout
    ((peer, detail),) = _audit(node, "security.alert", expect=1)
    assert peer == "GARBLED@127.0.0.1"
    assert detail == "protocol error in Sta6 on Evt10: AttributeError"
    assert echo(node.port)
    log = node.log_text()
    assert "pynetdicom" in log  # it did complain...
    _assert_no_traceback(node)  # ...in one line

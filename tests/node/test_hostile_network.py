"""Hostile peers on the network: oversized PDUs, connection floods, association limits.

The cases on the default config share one node (``shared_node``, :class:`testkit.since.Since`).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time

from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from dicomnode.net.server import start_guarded_server
from testkit import dicomgen
from testkit.hostile import (
    is_open,
    open_idle,
    push_oversized_pdu,
    wait_closed,
)
from testkit.nodeproc import DCMTK_ENV, ECHOSCU, echo, storescu
from testkit.since import Since


def _alerts(node, *, expect: int = 0) -> list[tuple[str, str]]:
    """The security alerts (of a :class:`Since`: those since it began), waiting (up to 10 s)
    until there are at least ``expect``."""
    view = node if isinstance(node, Since) else Since.everything(node)
    return view.audit("security.alert", expect=expect)


def _associate(node, ae_title: str = "PDUSCU", *, max_pdu: int = 16384):
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage)
    ae.maximum_pdu_size = max_pdu
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    return ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")


def test_p_data_over_the_offered_maximum_is_aborted(node_factory):
    node = node_factory(node={"max_pdu": 16384}).start()
    assoc = _associate(node)
    assert assoc.is_established
    assert assoc.acceptor.maximum_length == 16384
    raw = assoc.dul.socket.socket
    sent = push_oversized_pdu(raw, pdu_type=0x04, declared=300 * 2**20)
    # The node stopped reading at the header: the connection broke long before 300 MB went.
    assert sent < 32 * 2**20, f"{sent} bytes accepted before the abort"
    deadline = time.monotonic() + 10
    while not (assoc.is_aborted or not assoc.is_alive()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not assoc.is_established
    ((peer, detail),) = _alerts(node, expect=1)
    assert peer == "PDUSCU@127.0.0.1"
    assert "declares 314572800 bytes, over the limit of 16384" in detail
    # One P-DATA of exactly the offered maximum is fine: a series stores as usual.
    spec = dicomgen.study("pdu", [3])[0]
    ok = _associate(node, "GOODSCU", max_pdu=16384)
    assert ok.is_established
    assert [ok.send_c_store(ds).Status for ds in dicomgen.series(spec)] == [0, 0, 0]
    ok.release()
    assert echo(node.port)


def test_oversized_association_request_is_aborted_before_reading_it(shared_node):
    node = Since(shared_node)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as raw:
        sent = push_oversized_pdu(raw, pdu_type=0x01, declared=100 * 2**20)
        assert sent < 32 * 2**20
    ((peer, detail),) = _alerts(node, expect=1)
    assert peer.endswith("@127.0.0.1")
    assert "PDU type 0x01 declares 104857600 bytes" in detail
    assert echo(node.port)


def test_abort_pdu_is_sent_before_closing(shared_node):
    node = Since(shared_node)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as raw:
        raw.sendall(struct.pack(">BBL", 0x01, 0, 2**31))
        reply = raw.recv(10)
    assert reply[:1] == b"\x07", f"expected an A-ABORT PDU, got {reply!r}"
    assert reply[8:10] == b"\x02\x06"  # source: service provider, reason: invalid parameter


def test_idle_connection_flood_does_not_lock_out_a_sender(node_factory, tmp_path):
    # A long handshake timeout: the sender must get through while every idle socket is open.
    node = node_factory(node={"max_associations": 4, "handshake_timeout": 60}).start()
    idle = open_idle(node.port, 200)
    try:
        spec = dicomgen.study("flood", [20])[0]
        files = dicomgen.write_series(spec, tmp_path / "flood")
        result = storescu(node.port, files, aet="FLOODOK", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert (result.stdout + result.stderr).count("Received Store Response (Success)") == 20
        assert all(is_open(sock) for sock in idle), "idle sockets were closed to make room"
    finally:
        for sock in idle:
            sock.close()
    assert node.query("select count(*) from instances") == [(20,)]


def test_idle_connections_are_closed_after_the_handshake_timeout(node_factory):
    node = node_factory(node={"handshake_timeout": 1}).start()
    idle = open_idle(node.port, 50)
    try:
        assert wait_closed(idle, timeout=15) == len(idle)
    finally:
        for sock in idle:
            sock.close()
    assert echo(node.port)
    # Idle sockets are not associations and not security events.
    assert _alerts(node) == []


def test_association_limit_counts_admitted_associations_only(node_factory):
    node = node_factory(node={"max_associations": 2}).start()
    held = [_associate(node, f"HOLD{i}") for i in range(2)]
    assert all(a.is_established for a in held)
    third = subprocess.run(
        [ECHOSCU, "-v", "-aet", "THIRD", "-aec", "DICOMNODE", "127.0.0.1", str(node.port)],
        capture_output=True,
        text=True,
        env=DCMTK_ENV,
        timeout=30,
    )
    assert third.returncode != 0
    assert "Local Limit Exceeded" in third.stdout + third.stderr
    ((peer, detail),) = _alerts(node, expect=1)
    assert peer == "THIRD@127.0.0.1" and "association limit of 2 reached" in detail
    held[0].release()
    fourth = _associate(node, "FOURTH")
    assert fourth.is_established
    fourth.release()
    held[1].release()


def test_beyond_the_waiting_cap_the_longest_waiting_connections_are_closed():
    """In process, with a cap of 20: a flood costs at most 20 waiting threads, newest kept."""
    ae = AE(ae_title="DICOMNODE")
    ae.add_supported_context(Verification)
    server = start_guarded_server(
        ae,
        ("127.0.0.1", 0),
        evt_handlers=[],
        ssl_context=None,
        handshake_timeout=60,
        on_alert=lambda peer, detail: None,
    )
    server.max_waiting = 20
    port = int(server.server_address[1])
    idle = open_idle(port, 50)
    try:
        deadline = time.monotonic() + 10
        while sum(not is_open(s) for s in idle) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [is_open(s) for s in idle] == [False] * 30 + [True] * 20
        assert echo(port)  # a real peer still gets through; it evicts one more idle socket
    finally:
        for sock in idle:
            sock.close()
        ae.shutdown()

"""PDU framing: each header checked against the association state before its body is read.

The framing layer is fuzzed in process with hypothesis (random PDU sequences, split and merged
segments, through pynetdicom's own ``AssociationSocket`` over a real socket pair), then the
attacks that desynchronised the old length guard are replayed over the wire against a node.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationSocket

from dicomnode.errors import ProtocolViolation
from dicomnode.net.framing import (
    FramingLimits,
    PduReader,
    check_header,
    decode_p_data,
    socket_poller,
    socket_reader,
)
from testkit import dicomgen
from testkit.fuzzing import profile
from testkit.hostile import (
    associate_rq,
    pdu_header,
    push_oversized_pdu,
    read_until_closed,
    vm_kb,
)
from testkit.nodeproc import NodeProcess, echo
from testkit.since import Since

MiB = 2**20
#: The node the attack cases share (``shared_node``): it offers a maximum PDU of 16 KiB.
SHARED_NODE = {"node": {"max_pdu": 16384}}
LIMITS = FramingLimits(max_pdata=16384, max_control=4096)
# PS3.8 Table 9-10, written out independently of the module: what a peer may send.
MAY_SEND = {
    "Sta2": {0x01, 0x07},
    "Sta3": {0x07},
    "Sta6": {0x04, 0x05, 0x07},
    "Sta8": {0x07},
    "Sta13": {1, 2, 3, 4, 5, 6, 7},
}
FIXED_LENGTH = {0x03: 4, 0x05: 4, 0x06: 4, 0x07: 4}
MIN_LENGTH = {0x01: 68, 0x02: 68, 0x04: 6}

# -- the framing layer, in process ---------------------------------------------------------


def _acceptable(state: str, pdu_type: int, length: int) -> bool:
    limit = LIMITS.max_pdata if pdu_type == 0x04 else LIMITS.max_control
    if pdu_type not in MAY_SEND[state] or length > limit:
        return False
    if pdu_type in FIXED_LENGTH:
        return length == FIXED_LENGTH[pdu_type]
    return length >= MIN_LENGTH.get(pdu_type, 0)


pdu_types = st.one_of(st.integers(1, 7), st.integers(0, 255))
lengths = st.one_of(
    st.sampled_from([0, 4, 6, 68, 4096, 4097, 16384, 16385]),
    st.integers(0, 20_000),
    st.integers(0, 2**32 - 1),
)
#: PDUs that some state accepts: P-DATA, release, abort, association request.
plausible = st.one_of(
    st.tuples(st.just(0x04), st.integers(6, 16384)),
    st.tuples(st.sampled_from([0x05, 0x06, 0x07]), st.just(4)),
    st.tuples(st.just(0x01), st.integers(68, 4096)),
)
any_pdu = st.one_of(plausible, plausible, st.tuples(pdu_types, lengths))


class _CountingSocket:
    """The node's reader of a pynetdicom ``AssociationSocket`` (:func:`socket_reader`) on one
    end of a socket pair, counting reads."""

    def __init__(self, sock: socket.socket):
        assoc = AssociationSocket(Association(AE(), "acceptor"), client_socket=sock)
        self._recv_into = socket_reader(assoc)
        self.requested: list[int] = []
        self.consumed = 0

    def recv_into(self, view: memoryview) -> int:
        self.requested.append(len(view))
        count = self._recv_into(view)
        self.consumed += count
        return count


def _send_in_segments(sock: socket.socket, stream: bytes, cuts: list[int]) -> None:
    edges = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    try:
        for start, end in zip(edges, edges[1:], strict=False):
            sock.sendall(stream[start:end])
            if end - start < 64:
                time.sleep(0.0005)  # small segments arrive on their own
    except OSError:  # the reader stopped; the rest is never wanted
        pass
    finally:
        sock.close()


def _read_all(state: str, pdus: list[tuple[int, int]], cuts: list[int]) -> str:
    """Send ``pdus`` cut at ``cuts`` through a reader; check it; how the reading ended."""
    # The stream: each PDU's header, then its body if it is small enough to send.
    stream = bytearray()
    expected: list[bytes] = []
    for index, (pdu_type, length) in enumerate(pdus):
        body = bytes([0x41 + index]) * length if length <= 20_000 else b""  # AE-title-safe
        expected.append(pdu_header(pdu_type, length) + body)
        stream += expected[-1]
    reader_end, writer_end = socket.socketpair()
    writer = threading.Thread(
        target=_send_in_segments, args=(writer_end, bytes(stream), cuts), daemon=True
    )
    writer.start()
    counting = _CountingSocket(reader_end)
    reader = PduReader(counting.recv_into, LIMITS)
    read: list[bytes] = []
    violation = None
    try:
        while True:
            try:
                pdu = reader.read(state)
            except ProtocolViolation as exc:
                violation = exc
                break
            if pdu is None:
                break
            read.append(pdu)
    finally:
        reader_end.close()
        writer.join(10)
    # Whole PDUs, byte for byte, in order: split or merged segments never shift a boundary.
    assert read == expected[: len(read)]
    for pdu in read:
        assert _acceptable(state, pdu[0], int.from_bytes(pdu[2:6], "big"))
    # It stops at the first unacceptable header, having read its 6 bytes and nothing more.
    first_bad = next(
        (i for i, (t, n) in enumerate(pdus) if not _acceptable(state, t, n)), len(pdus)
    )
    if violation is not None:
        assert len(read) == first_bad
        assert counting.consumed == sum(len(p) for p in read) + 6
    else:
        assert len(read) <= first_bad
    # No read ever asks for more than the largest acceptable body.
    assert max(counting.requested) <= LIMITS.max_pdata
    # Closed after a violation or a short read: nothing more is read.
    before = counting.consumed
    assert reader.read(state) is None or violation is None
    assert counting.consumed == before or violation is None
    return "violation" if violation is not None else f"closed after {len(read)}"


def test_framing_never_reads_a_refused_body_and_never_desynchronises():
    endings: Counter[str] = Counter()

    @profile()
    @given(
        state=st.sampled_from(sorted(MAY_SEND)),
        pdus=st.lists(any_pdu, min_size=1, max_size=8),
        cuts=st.lists(st.integers(0, 200_000), max_size=12),
    )
    def one(state: str, pdus: list[tuple[int, int]], cuts: list[int]) -> None:
        endings[_read_all(state, pdus, cuts)] += 1

    one()
    # The strategy reaches both ends: refused headers, and whole PDUs read past.
    assert endings["violation"] > 0
    assert (
        sum(n for ending, n in endings.items() if ending not in ("violation", "closed after 0")) > 0
    )


def _pynetdicom_items(pdu: bytes) -> list[tuple[int, bytes]] | None:
    """pynetdicom's own decoding of a P-DATA-TF PDU, or ``None`` where it raises."""
    decoded = P_DATA_TF()
    try:
        decoded.decode(pdu)
    except Exception:
        return None
    return [
        (int(item.presentation_context_id), bytes(item.presentation_data_value or b""))
        for item in decoded.presentation_data_value_items
    ]


@st.composite
def _p_data_pdus(draw) -> tuple[bytearray, bool]:
    """A P-DATA-TF PDU: well-formed items (context ID, control header, data), or the same
    with its bytes cut, grown or an item length rewritten. Returns (PDU, well-formed)."""
    body = bytearray()
    for _ in range(draw(st.integers(1, 4))):
        value = bytes([draw(st.integers(0, 3))]) + draw(st.binary(max_size=300))
        body += (1 + len(value)).to_bytes(4, "big") + bytes([draw(st.integers(1, 255))]) + value
    damage = draw(st.sampled_from(["none", "cut", "grow", "length"]))
    if damage == "cut":
        del body[draw(st.integers(0, len(body) - 1)) :]
    elif damage == "grow":
        body += draw(st.binary(min_size=1, max_size=8))
    elif damage == "length":
        body[0:4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    return bytearray(pdu_header(0x04, len(body)) + body), damage == "none"


def test_p_data_decoded_without_copies_as_pynetdicom_decodes_it():
    outcomes: Counter[str] = Counter()

    @profile()
    @given(_p_data_pdus())
    def one(case: tuple[bytearray, bool]) -> None:
        pdu, well_formed = case
        expected = _pynetdicom_items(bytes(pdu))
        decoded = decode_p_data(pdu)
        if decoded is None:  # left to pynetdicom, which then decides as before
            assert not well_formed
            outcomes["left to pynetdicom"] += 1
            return
        items = decoded.presentation_data_value_items
        assert [
            (item.presentation_context_id, bytes(item.presentation_data_value)) for item in items
        ] == expected
        for item in items:  # views of the PDU as read, not copies
            assert isinstance(item.presentation_data_value, memoryview)
            assert item.presentation_data_value.obj is pdu
        assert decoded.to_primitive().presentation_data_value_list == [
            (item.presentation_context_id, item.presentation_data_value) for item in items
        ]
        outcomes["decoded"] += 1

    one()
    assert outcomes["decoded"] > 0 and outcomes["left to pynetdicom"] > 0, outcomes


def _poller_pair(timeout: float | None) -> tuple[PduReader, socket.socket, socket.socket]:
    reader_end, writer_end = socket.socketpair()
    reader_end.settimeout(timeout)
    assoc = AssociationSocket(Association(AE(), "acceptor"), client_socket=reader_end)
    return PduReader(socket_reader(assoc), LIMITS, socket_poller(assoc)), reader_end, writer_end


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["blocking", "with-timeout"])
def test_poll_reads_a_pdu_only_once_it_has_begun_to_arrive(timeout):
    """``poll`` never waits for a PDU to begin (not even on a socket with a timeout, where a
    plain read would wait for it), reads it whole once it has, and reports the close."""
    reader, reader_end, writer_end = _poller_pair(timeout)
    try:
        started = time.monotonic()
        with pytest.raises(BlockingIOError):
            reader.poll("Sta6")
        assert time.monotonic() - started < 1
        release = pdu_header(0x05, 4) + b"\0\0\0\0"
        writer_end.sendall(release[:3])  # half a header: the rest follows
        threading.Timer(0.05, writer_end.sendall, [release[3:]]).start()
        assert reader.poll("Sta6") == release
        with pytest.raises(BlockingIOError):
            reader.poll("Sta6")
        writer_end.close()
        assert reader.poll("Sta6") is None
    finally:
        reader_end.close()
        writer_end.close()


def test_header_rules_name_what_is_wrong():
    with pytest.raises(ProtocolViolation, match="unknown PDU type 0x08") as unknown:
        check_header("Sta2", pdu_header(0x08, 0), LIMITS)
    assert unknown.value.reason == 0x01
    with pytest.raises(ProtocolViolation, match=r"0x04 \(P_DATA_TF\) not expected in state Sta2"):
        check_header("Sta2", pdu_header(0x04, 10), LIMITS)
    with pytest.raises(ProtocolViolation, match="declares 16385 bytes, over the limit of 16384"):
        check_header("Sta6", pdu_header(0x04, 16385), LIMITS)
    with pytest.raises(ProtocolViolation, match="declares 1000 bytes, must be 4"):
        check_header("Sta6", pdu_header(0x05, 1000), LIMITS)
    assert check_header("Sta6", pdu_header(0x04, 16384), LIMITS).length == 16384
    # The acceptor reads its first PDU before the FSM leaves Sta1 (Evt5 still queued).
    assert check_header("Sta1", pdu_header(0x01, 200), LIMITS).length == 200


# -- over the wire -------------------------------------------------------------------------


def _alerts(node: NodeProcess | Since, *, expect: int) -> list[tuple[str, str]]:
    view = node if isinstance(node, Since) else Since.everything(node)
    return view.audit("security.alert", expect=expect)


def _unknown_then_huge_pdata(port: int) -> tuple[int, bytes]:
    """The probe's attack: PDU type 0x08 of length 0, then a P-DATA-TF header of 256 MiB."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(pdu_header(0x08, 0))
        sent = push_oversized_pdu(raw, pdu_type=0x04, declared=256 * MiB)
        return sent, read_until_closed(raw, timeout=5)


def test_unknown_pdu_then_huge_p_data_is_aborted_before_any_body(node_factory, tmp_path):
    node = node_factory().start()
    pid = node.proc.pid
    before = vm_kb(pid, "VmRSS")
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(_unknown_then_huge_pdata, [node.port] * 3))
    for sent, reply in results:
        assert sent < 32 * MiB, f"{sent} bytes accepted before the abort"
        assert reply[:1] == b"\x07", f"expected an A-ABORT PDU, got {reply[:10]!r}"
        assert reply[8:10] == b"\x02\x01"  # source: service provider, reason: unrecognized PDU
    growth_mb = (vm_kb(pid, "VmHWM") - before) / 1024
    assert growth_mb < 50, f"RSS grew {growth_mb:.1f} MB"
    alerts = _alerts(node, expect=3)
    assert len(alerts) == 3, alerts  # one per connection, not one per byte read
    assert all(peer == "?@127.0.0.1" for peer, _ in alerts)
    assert all(detail == "unknown PDU type 0x08" for _, detail in alerts)
    # Still serving.
    spec = dicomgen.study("after-framing", [2])[0]
    ae = AE(ae_title="GOODSCU")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")
    assert assoc.is_established
    assert [assoc.send_c_store(ds).Status for ds in dicomgen.series(spec)] == [0, 0]
    assoc.release()


@pytest.mark.parametrize(
    ("prelude", "attack", "reason", "detail"),
    [
        # P-DATA before any association request: no allow-list ever applied, body never read.
        (False, pdu_header(0x04, 200 * MiB), 0x02, "(P_DATA_TF) not expected in state Sta2"),
        # A second association request on an established association.
        (True, pdu_header(0x01, 512 * 1024), 0x02, "(A_ASSOCIATE_RQ) not expected in state Sta6"),
        # A release request whose length is not 4.
        (True, pdu_header(0x05, 100 * MiB), 0x06, "declares 104857600 bytes"),
    ],
    ids=["p-data-first", "second-request", "long-release"],
)
def test_unexpected_pdus_are_aborted_unread(shared_node, prelude, attack, reason, detail):
    node = Since(shared_node)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as raw:
        if prelude:
            raw.sendall(associate_rq("RAWSCU"))
            accept = raw.recv(6)
            assert accept[:1] == b"\x02", f"association not accepted: {accept!r}"
            length = int.from_bytes(accept[2:6], "big")
            while length:
                length -= len(raw.recv(length))
        raw.sendall(attack)
        reply = read_until_closed(raw, timeout=5)
    assert reply[:1] == b"\x07" and reply[8:10] == bytes([0x02, reason]), reply[:10]
    ((peer, text),) = _alerts(node, expect=1)
    assert detail in text
    assert peer == ("RAWSCU@127.0.0.1" if prelude else "?@127.0.0.1")
    assert echo(node.port)


@st.composite
def _hostile_streams(draw) -> bytes:
    """A valid association request or not, then random PDUs, some with real bodies."""
    stream = bytearray(associate_rq("FUZZSCU") if draw(st.booleans()) else b"")
    for pdu_type, length in draw(st.lists(st.tuples(pdu_types, lengths), max_size=5)):
        body = b"\x00" * min(length, 4096)
        stream += pdu_header(pdu_type, length) + body
    return bytes(stream)


def test_random_pdu_streams_over_the_wire(node_factory):
    node = node_factory(node={"max_pdu": 16384, "handshake_timeout": 2}).start()
    pid = node.proc.pid
    before = vm_kb(pid, "VmRSS")
    sent_streams = []

    # Each input is a connection to a live node: the fuzz-ci profile, capped at 40 inputs.
    @settings(profile(), max_examples=40)
    @given(_hostile_streams(), st.lists(st.integers(0, 10_000), max_size=6))
    def one(stream: bytes, cuts: list[int]) -> None:
        with socket.create_connection(("127.0.0.1", node.port), timeout=5) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            edges = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
            try:
                for start, end in zip(edges, edges[1:], strict=False):
                    raw.sendall(stream[start:end])
            except OSError:
                pass
        sent_streams.append(len(stream))

    one()
    assert sent_streams
    growth_mb = (vm_kb(pid, "VmHWM") - before) / 1024
    assert growth_mb < 50, f"RSS grew {growth_mb:.1f} MB"
    assert echo(node.port)
    assert "Traceback" not in node.log_text()

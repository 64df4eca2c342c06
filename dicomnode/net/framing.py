"""PDU framing on the acceptor's side: one PDU at a time, its header checked before its body.

PS3.8 9.3: every PDU is a 6-byte header (type, reserved, 32-bit length) followed by exactly
``length`` bytes. pynetdicom 3.0.4's DUL reads a PDU of whatever type and length the header
declares, in any association state. This module replaces that read with a state machine over the
byte stream: the header is read exactly (6 bytes), its type checked against the PDU types that
PS3.8 Table 9-10 lets the peer send in the current state, its length against the limit for that
type, and only then is the body read, exactly. A PDU that fails the check is never read: the
peer gets an A-ABORT and the connection is closed.

:func:`check_header` is the pure rule (what may come next); :class:`PduReader` applies it to a
socket; :func:`install` puts a reader in place of the DUL's own read, and returns the poll that
the event-driven DUL (:mod:`dicomnode.net.eventloop`) calls instead of a readiness check per
PDU. A well-formed P-DATA-TF is decoded by :func:`decode_p_data` into views of the bytes read,
not copies; anything else by pynetdicom.
"""

from __future__ import annotations

import enum
import logging
import select
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass

from pynetdicom import evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ, P_DATA_TF
from pynetdicom.pdu_items import PresentationDataValueItem
from pynetdicom.transport import AssociationSocket

from dicomnode.errors import ProtocolViolation

__all__ = [
    "HEADER_LENGTH",
    "MAX_CONTROL_PDU",
    "AbortReason",
    "FramingLimits",
    "PduHeader",
    "PduReader",
    "PduType",
    "abort",
    "check_ae_titles",
    "check_header",
    "decode_p_data",
    "install",
    "socket_poller",
    "socket_reader",
]

log = logging.getLogger(__name__)

HEADER_LENGTH = 6

#: Longest PDU other than P-DATA-TF accepted (an A-ASSOCIATE-RQ proposing 128 contexts with a
#: dozen transfer syntaxes each is about 40 KB).
MAX_CONTROL_PDU = 1 << 20

_HEADER = struct.Struct(">BBL")


class PduType(enum.IntEnum):
    """The seven PDU types of PS3.8 9.3."""

    A_ASSOCIATE_RQ = 0x01
    A_ASSOCIATE_AC = 0x02
    A_ASSOCIATE_RJ = 0x03
    P_DATA_TF = 0x04
    A_RELEASE_RQ = 0x05
    A_RELEASE_RP = 0x06
    A_ABORT = 0x07


class AbortReason(enum.IntEnum):
    """A-ABORT reason/diagnostic values for source 2, service provider (PS3.8 9.3.8)."""

    UNRECOGNIZED_PDU = 0x01
    UNEXPECTED_PDU = 0x02
    INVALID_PARAMETER = 0x06


#: The PDU types a peer may send in each state of PS3.8 Table 9-10 (anything else there is
#: answered with an A-ABORT by the standard too: AA-1, AA-8). Sta13 (waiting for the peer to
#: close) reads and ignores any PDU (AA-6/AA-7). The acceptor's DUL reads its first PDU while
#: still in Sta1, with the transport indication (Evt5, to Sta2) on its queue: Sta1 is read as
#: Sta2 (:func:`check_header`). Receive-driven transitions may lag the same way (the DUL
#: queues an event per PDU it reads), which never narrows the set: after a peer's
#: A-ASSOCIATE-RQ or A-RELEASE-RQ it may only abort.
_EXPECTED: dict[str, frozenset[PduType]] = {
    "Sta2": frozenset({PduType.A_ASSOCIATE_RQ, PduType.A_ABORT}),
    "Sta3": frozenset({PduType.A_ABORT}),
    "Sta5": frozenset({PduType.A_ASSOCIATE_AC, PduType.A_ASSOCIATE_RJ, PduType.A_ABORT}),
    "Sta6": frozenset({PduType.P_DATA_TF, PduType.A_RELEASE_RQ, PduType.A_ABORT}),
    "Sta7": frozenset(
        {PduType.P_DATA_TF, PduType.A_RELEASE_RQ, PduType.A_RELEASE_RP, PduType.A_ABORT}
    ),
    "Sta8": frozenset({PduType.A_ABORT}),
    "Sta9": frozenset({PduType.A_ABORT}),
    "Sta10": frozenset({PduType.A_RELEASE_RP, PduType.A_ABORT}),
    "Sta11": frozenset({PduType.A_RELEASE_RP, PduType.A_ABORT}),
    "Sta12": frozenset({PduType.A_ABORT}),
    "Sta13": frozenset(PduType),
}

#: Fixed lengths (A-RELEASE-RQ/RP, A-ABORT, A-ASSOCIATE-RJ: 4 bytes) and minimum lengths
#: (A-ASSOCIATE-RQ/AC: 68 bytes of fixed fields; P-DATA-TF: one PDV item, 6 bytes).
_EXACT = {
    PduType.A_ASSOCIATE_RJ: 4,
    PduType.A_RELEASE_RQ: 4,
    PduType.A_RELEASE_RP: 4,
    PduType.A_ABORT: 4,
}
_MINIMUM = {PduType.A_ASSOCIATE_RQ: 68, PduType.A_ASSOCIATE_AC: 68, PduType.P_DATA_TF: 6}


@dataclass(frozen=True)
class FramingLimits:
    """The longest PDU bodies accepted.

    Parameters
    ----------
    max_pdata : int
        The maximum PDU length the node offered (PS3.8 D.1: the length of the P-DATA-TF
        variable field, which is the PDU length).
    max_control : int
        Every other PDU type.
    """

    max_pdata: int
    max_control: int = MAX_CONTROL_PDU

    def __post_init__(self) -> None:
        if self.max_pdata < 6 or self.max_control < 68:
            raise ValueError(
                f"limits too small: max_pdata {self.max_pdata} (at least 6), "
                f"max_control {self.max_control} (at least 68)"
            )

    def of(self, pdu_type: PduType) -> int:
        """The limit for one PDU type."""
        return self.max_pdata if pdu_type is PduType.P_DATA_TF else self.max_control


@dataclass(frozen=True)
class PduHeader:
    """A header that passed :func:`check_header`."""

    pdu_type: PduType
    length: int


def check_header(state: str, header: bytes | bytearray, limits: FramingLimits) -> PduHeader:
    """Check a 6-byte PDU header against the association state and the limits.

    Parameters
    ----------
    state : str
        The DUL state (``Sta1`` … ``Sta13``, PS3.8 Table 9-10).
    header : bytes
        Exactly :data:`HEADER_LENGTH` bytes.
    limits : FramingLimits
        The longest bodies accepted.

    Returns
    -------
    PduHeader
        The PDU's type and body length, when its body may be read.

    Raises
    ------
    ProtocolViolation
        The PDU must not be read: unknown type, a type not expected in ``state``, or a length
        over the limit or not the one its type requires. ``reason`` is the A-ABORT diagnostic.
    """
    if len(header) != HEADER_LENGTH:
        raise ValueError(f"a PDU header is {HEADER_LENGTH} bytes, not {len(header)}")
    raw_type, _, length = _HEADER.unpack(header)
    state = "Sta2" if state == "Sta1" else state
    try:
        pdu_type = PduType(raw_type)
    except ValueError:
        raise ProtocolViolation(
            AbortReason.UNRECOGNIZED_PDU, f"unknown PDU type 0x{raw_type:02X}"
        ) from None
    if pdu_type not in _EXPECTED.get(state, frozenset()):
        raise ProtocolViolation(
            AbortReason.UNEXPECTED_PDU,
            f"PDU type 0x{raw_type:02X} ({pdu_type.name}) not expected in state {state}",
        )
    limit = limits.of(pdu_type)
    if length > limit:
        raise ProtocolViolation(
            AbortReason.INVALID_PARAMETER,
            f"PDU type 0x{raw_type:02X} declares {length} bytes, over the limit of {limit}",
        )
    exact = _EXACT.get(pdu_type)
    minimum = exact if exact is not None else _MINIMUM.get(pdu_type, 0)
    if length < minimum or (exact is not None and length != exact):
        expected = f"{exact}" if exact is not None else f"at least {minimum}"
        raise ProtocolViolation(
            AbortReason.INVALID_PARAMETER,
            f"PDU type 0x{raw_type:02X} declares {length} bytes, must be {expected}",
        )
    return PduHeader(pdu_type, length)


def _valid_ae_title(raw: bytes) -> bool:
    """PS3.5 AE: the default repertoire without backslash or control characters, not blank."""
    return all(0x20 <= b <= 0x7E and b != 0x5C for b in raw) and bool(raw.strip(b" "))


def check_ae_titles(body: bytes) -> None:
    """Check the called and calling AE titles of an A-ASSOCIATE-RQ body (PS3.8 9.3.2).

    Raises
    ------
    ProtocolViolation
        A title holds NUL, control characters, a backslash or non-ASCII bytes, or is blank.
        The detail names both titles, escaped.
    """
    called, calling = body[4:20], body[20:36]
    bad = [
        name for name, raw in (("called", called), ("calling", calling)) if not _valid_ae_title(raw)
    ]
    if bad:
        raise ProtocolViolation(
            AbortReason.INVALID_PARAMETER,
            f"A-ASSOCIATE-RQ with an invalid {' and '.join(bad)} AE title: "
            f"called {_shown(called)}, calling {_shown(calling)}",
        )


def _shown(raw: bytes) -> str:
    """An AE title for a log line: printable ASCII as is, anything else escaped."""
    return (
        "'"
        + raw.decode("ascii", "backslashreplace")
        .rstrip(" ")
        .encode("unicode_escape")
        .decode("ascii")
        + "'"
    )


class PduReader:
    """Reads whole PDUs from a connection, one header then exactly one body at a time.

    Each PDU is read into one buffer of its declared length, straight from the socket
    (pynetdicom 3.0.4's ``AssociationSocket.recv`` reads 4 KB per system call and copies each
    piece again: 64 calls for a 256 KB P-DATA-TF).

    Parameters
    ----------
    recv_into : callable
        ``recv_into(view)`` fills up to ``len(view)`` bytes of ``view`` and returns how many,
        0 only when the connection closed (:meth:`socket.socket.recv_into`).
    limits : FramingLimits
        The longest bodies accepted.
    poll_into : callable, optional
        ``recv_into`` that never waits: it raises :class:`BlockingIOError` when nothing has
        arrived (:func:`socket_poller`). Needed by :meth:`poll` only.
    """

    def __init__(
        self,
        recv_into: Callable[[memoryview], int],
        limits: FramingLimits,
        poll_into: Callable[[memoryview], int] | None = None,
    ):
        self._recv_into = recv_into
        self._poll_into = poll_into
        self.limits = limits
        self.closed = False

    def _fill(self, view: memoryview) -> bool:
        """Fill ``view`` from the connection; False when it closed first."""
        while view:
            count = self._recv_into(view)
            if not count:
                return False
            view = view[count:]
        return True

    def read(self, state: str) -> bytearray | None:
        """The next whole PDU (header and body), or ``None`` when the connection closed.

        After a violation or a short read the reader is closed: it reads nothing more (bytes
        still buffered after a violation are the attacker's, not PDUs).

        Raises
        ------
        ProtocolViolation
            The header failed :func:`check_header`; no body byte was read.
        OSError
            The connection failed.
        """
        return self._read(state, None)

    def poll(self, state: str) -> bytearray | None:
        """:meth:`read`, if the next PDU has begun to arrive.

        The one system call that finds out whether anything arrived also reads the first
        bytes of the header (where a readiness check and then a read would take two); the
        rest of the PDU is then read as :meth:`read` does.

        Raises
        ------
        BlockingIOError
            Nothing has arrived (nothing was read; the reader stays open).
        ProtocolViolation, OSError
            As :meth:`read`.
        """
        if self._poll_into is None:
            raise RuntimeError("PduReader.poll() needs poll_into")
        return self._read(state, self._poll_into)

    def _read(self, state: str, first: Callable[[memoryview], int] | None) -> bytearray | None:
        if self.closed:
            return None
        header = bytearray(HEADER_LENGTH)
        view = memoryview(header)
        if first is not None:
            count = first(view)  # BlockingIOError: nothing read, still open
            if not count:
                self.closed = True
                return None
            view = view[count:]
        self.closed = True
        if not self._fill(view):
            return None
        checked = check_header(state, header, self.limits)
        pdu = bytearray(HEADER_LENGTH + checked.length)
        pdu[:HEADER_LENGTH] = header
        if not self._fill(memoryview(pdu)[HEADER_LENGTH:]):
            return None
        if checked.pdu_type is PduType.A_ASSOCIATE_RQ:
            check_ae_titles(bytes(pdu[HEADER_LENGTH:]))
        self.closed = False
        return pdu


_PDV_LENGTH = struct.Struct(">L")


def decode_p_data(pdu: bytearray) -> P_DATA_TF | None:
    """A whole P-DATA-TF PDU decoded without copying its data, or ``None`` if malformed.

    pynetdicom's ``P_DATA_TF.decode`` takes ``bytes`` (a copy of the PDU) and slices each
    presentation data value out of it (a second copy; a third when its DIMSE layer drops
    the message control header with ``value[1:]``). Here each value is a
    :class:`memoryview` of ``pdu`` itself, which everything downstream reads as it reads
    ``bytes`` (indexing, slicing, ``len``, writes). A PDU whose items do not tile its body
    exactly (an item shorter than its context ID and control header, one running past the
    end, trailing bytes) gives ``None``: pynetdicom's own decoder then decides, so malformed
    input meets the same checks as before.
    """
    view = memoryview(pdu)
    end = len(pdu)
    offset = HEADER_LENGTH
    items = []
    while offset < end:
        if end - offset < 6:
            return None
        (length,) = _PDV_LENGTH.unpack_from(pdu, offset)
        if length < 2 or offset + 4 + length > end:
            return None
        item = PresentationDataValueItem()
        item.presentation_context_id = pdu[offset + 4]
        item.presentation_data_value = view[offset + 5 : offset + 4 + length]  # type: ignore[assignment]
        items.append(item)
        offset += 4 + length
    if not items:
        return None
    decoded = P_DATA_TF()
    decoded.presentation_data_value_items = items
    return decoded


def socket_reader(sock: AssociationSocket) -> Callable[[memoryview], int]:
    """``recv_into`` on the connection of pynetdicom's ``sock`` (plain or TLS)."""

    def recv_into(view: memoryview) -> int:
        connection = sock.socket
        if connection is None:
            raise ConnectionResetError("the association's socket is closed")
        return connection.recv_into(view)

    return recv_into


def socket_poller(sock: AssociationSocket) -> Callable[[memoryview], int]:
    """``recv_into`` on the connection of ``sock`` that raises :class:`BlockingIOError`
    instead of waiting when nothing has arrived.

    A plain blocking socket reads with ``MSG_DONTWAIT`` (one system call). A TLS connection,
    or one with a timeout (where Python would wait before reading), is asked first, as
    pynetdicom's ``AssociationSocket.ready`` does: TLS records already decrypted, then a
    zero-timeout ``select``.
    """

    def poll_into(view: memoryview) -> int:
        connection = sock.socket
        if connection is None:
            raise ConnectionResetError("the association's socket is closed")
        if isinstance(connection, ssl.SSLSocket) or connection.gettimeout() is not None:
            pending = isinstance(connection, ssl.SSLSocket) and connection.pending() > 0
            if not pending and not select.select([connection], [], [], 0)[0]:
                raise BlockingIOError("nothing has arrived")
            return connection.recv_into(view)
        return connection.recv_into(view, 0, socket.MSG_DONTWAIT)

    return poll_into


def abort(sock: socket.socket | None, reason: int) -> None:
    """Send an A-ABORT (source: service provider) and shut the connection down."""
    if sock is None:
        return
    pdu = A_ABORT_RQ()
    pdu.source = 0x02
    pdu.reason_diagnostic = int(reason)
    try:
        sock.sendall(pdu.encode())
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def install(
    dul: DULServiceProvider, limits: FramingLimits, on_violation: Callable[[str], None]
) -> Callable[[], bool]:
    """Read the DUL's PDUs through a :class:`PduReader` (before the association starts).

    pynetdicom's DUL calls ``_read_pdu_data()`` whenever its socket is readable; this replaces
    it with the same contract (an FSM event on ``event_queue``, the decoded PDU on
    ``_recv_pdu``) on top of checked framing. A violation sends an A-ABORT, closes the
    connection, calls ``on_violation`` with one line and ends the association as a closed
    transport (Evt17) does. Decoding failures are logged in one line, never a traceback.

    Returns
    -------
    callable
        ``poll_pdu()``: the same read, if the next PDU has begun to arrive, without a
        separate readiness check (:meth:`PduReader.poll`); ``True`` when it queued an event
        (a PDU, or the end of the connection), ``False`` when nothing had arrived. For
        :func:`dicomnode.net.eventloop.install`.
    """
    sock = dul.socket
    assert sock is not None, "install() needs the association's socket"
    reader = PduReader(socket_reader(sock), limits, poll_into=socket_poller(sock))

    def receive(poll: bool) -> bool:
        try:
            state = dul.state_machine.current_state
            raw = reader.poll(state) if poll else reader.read(state)
        except BlockingIOError:
            return False
        except ProtocolViolation as exc:
            abort(sock.socket, exc.reason)
            on_violation(exc.detail)
            dul.event_queue.put("Evt17")
            return True
        except OSError as exc:
            log.info("connection failed mid-PDU: %s", type(exc).__name__)
            dul.event_queue.put("Evt17")
            return True
        if raw is None:
            dul.event_queue.put("Evt17")
            return True
        assoc = dul.assoc
        if raw[0] == PduType.P_DATA_TF and not assoc.get_handlers(evt.EVT_DATA_RECV):
            # the raw bytes are for EVT_DATA_RECV handlers: with none, no copy is needed
            data = decode_p_data(raw)
            if data is not None:
                evt.trigger(assoc, evt.EVT_PDU_RECV, {"pdu": data})
                dul.event_queue.put("Evt10")  # P-DATA-TF PDU received (PS3.8 Table 9-10)
                dul._recv_pdu.put(data)
                return True
        try:
            pdu, event = dul._decode_pdu(raw)
        except Exception as exc:  # any malformed body: PS3.8 Evt19, the FSM aborts
            log.info("undecodable PDU type 0x%02X: %s", raw[0], type(exc).__name__)
            dul.event_queue.put("Evt19")
            return True
        dul.event_queue.put(event)
        dul._recv_pdu.put(pdu)
        return True

    def read_pdu_data() -> None:
        receive(poll=False)

    def poll_pdu() -> bool:
        if sock.socket is None or not sock._is_connected:
            return False  # closed: AssociationSocket.close() has queued Evt17 (as ready())
        return receive(poll=True)

    fsm = dul.state_machine
    do_action = fsm.do_action

    def guarded_action(event: str) -> None:
        # pynetdicom runs FSM actions outside its reactor's exception net: a P-DATA whose
        # command does not decode raises in DT-2 and kills the DUL thread with a traceback,
        # leaving the association open until the network timeout. Abort instead.
        try:
            do_action(event)
        except Exception as exc:
            state = fsm.current_state
            abort(sock.socket, 0x00)
            on_violation(f"protocol error in {state} on {event}: {type(exc).__name__}")
            assoc = dul.assoc
            assoc.is_aborted, assoc.is_established = True, False
            assoc._kill = True
            dul.kill_dul()

    dul._read_pdu_data = read_pdu_data  # type: ignore[method-assign]
    fsm.do_action = guarded_action  # type: ignore[method-assign]
    return poll_pdu

"""Hostile network peers for tests and benchmarks: oversized PDUs, idle sockets."""

from __future__ import annotations

import select
import socket
import struct
import time
from pathlib import Path

__all__ = [
    "associate_rq",
    "is_open",
    "open_idle",
    "pdu_header",
    "push_oversized_pdu",
    "read_until_closed",
    "vm_kb",
    "wait_closed",
]


def push_oversized_pdu(sock: socket.socket, *, pdu_type: int, declared: int) -> int:
    """Send a PDU header declaring ``declared`` bytes, then zeros until the peer breaks off.

    Returns the number of body bytes the connection took before it broke (or ``declared``
    when it took them all). The socket's timeout bounds a peer that stops reading.
    """
    sock.sendall(struct.pack(">BBL", pdu_type, 0, declared))
    chunk = bytes(1 << 20)
    sent = 0
    try:
        while sent < declared:
            size = min(len(chunk), declared - sent)
            sock.sendall(chunk[:size])
            sent += size
    except OSError:  # reset or broken pipe: the peer aborted; a timeout: it stopped reading
        pass
    return sent


def open_idle(port: int, count: int, *, host: str = "127.0.0.1") -> list[socket.socket]:
    """Open ``count`` TCP connections that never send a byte."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=30)
        sockets.append(sock)
    return sockets


def is_open(sock: socket.socket) -> bool:
    """Whether the peer has neither closed nor reset the connection (nothing is read)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return True
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except OSError:
        return False


def wait_closed(sockets: list[socket.socket], *, timeout: float) -> int:
    """Wait until the peer closed every socket or ``timeout`` passed; returns how many it closed."""
    deadline = time.monotonic() + timeout
    while True:
        closed = sum(not is_open(sock) for sock in sockets)
        if closed == len(sockets) or time.monotonic() > deadline:
            return closed
        time.sleep(0.1)


def associate_rq(calling: str, called: str = "DICOMNODE", *, max_pdu: int = 16384) -> bytes:
    """A well-formed A-ASSOCIATE-RQ PDU proposing Verification (for raw-socket tests)."""
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import (
        A_ASSOCIATE,
        ImplementationClassUIDNotification,
        MaximumLengthNotification,
    )
    from pynetdicom.presentation import build_context

    context = build_context("1.2.840.10008.1.1")
    context.context_id = 1
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    primitive.presentation_context_definition_list = [context]
    length = MaximumLengthNotification()
    length.maximum_length_received = max_pdu
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.3.0.4"
    primitive.user_information = [length, implementation]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def pdu_header(pdu_type: int, length: int) -> bytes:
    """A 6-byte PDU header (type, reserved, 32-bit big-endian length)."""
    return struct.pack(">BBL", pdu_type, 0, length)


def read_until_closed(sock: socket.socket, *, timeout: float = 10) -> bytes:
    """Everything the peer sends until it closes (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    received = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except OSError:
        pass
    return bytes(received)


def vm_kb(pid: int, key: str = "VmHWM") -> int:
    """A ``/proc/<pid>/status`` memory field in kB (VmRSS, VmHWM: the peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)

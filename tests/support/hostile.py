"""Hostile network peers for tests and benchmarks: oversized PDUs, idle sockets."""

from __future__ import annotations

import select
import socket
import struct
import time

__all__ = ["is_open", "open_idle", "push_oversized_pdu", "wait_closed"]


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

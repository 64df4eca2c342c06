"""The association limits, held in one table that every SCP process of a node shares.

``node.max_associations`` and the per-peer limit count the associations of the whole node,
however many SCP processes (``node.processes``) accept them. The table is a small file in
memory (``memfd``) that the first process creates and its SCP children inherit: one record per
admitted association, ``(pid, peer)``. A claim and a release take a POSIX record lock on it
(between processes) and a thread lock (between the threads of one process: POSIX locks belong
to the process), read the records, and write one. Nothing here touches the database; an
association costs two short locked passes over at most :data:`CAPACITY` records.

A process that dies holding records (``kill -9``) leaves them behind: its parent calls
:meth:`AssociationSlots.release_pid` once it has reaped it, and every claim frees the records
of processes that no longer exist.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CAPACITY", "AssociationSlots", "LimitReached"]

#: Records in the table: the most ``node.max_associations`` allows.
CAPACITY = 1000
#: pid (0: free), peer key (calling AE title @ address, UTF-8, NUL-padded).
_RECORD = struct.Struct("<i60s")


class LimitReached(Exception):
    """An association limit is reached; ``reason`` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class AssociationSlots:
    """The node's admitted associations, shared by its SCP processes.

    Parameters
    ----------
    fd : int, optional
        The table's file descriptor, inherited from the process that created it; None
        creates a new, empty table.
    """

    def __init__(self, fd: int | None = None):
        size = CAPACITY * _RECORD.size
        if fd is None:
            fd = os.memfd_create("dicomnode-associations", 0)
            os.ftruncate(fd, size)
        self.fd = fd
        self._map = mmap.mmap(fd, size)
        self._lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def _records(self) -> Iterator[tuple[int, int, bytes]]:
        for index in range(CAPACITY):
            pid, peer = _RECORD.unpack_from(self._map, index * _RECORD.size)
            yield index, pid, peer

    def claim(self, peer: str, *, total: int, per_peer: int) -> int:
        """Hold one record for an association of ``peer``; returns its index.

        Parameters
        ----------
        peer : str
            The calling AE title and the source address (``AE@address``).
        total : int
            ``node.max_associations``: records held by every process together.
        per_peer : int
            Records one ``peer`` may hold.

        Raises
        ------
        LimitReached
            ``total`` or ``per_peer`` records are held already.
        """
        key = _key(peer)
        alive: dict[int, bool] = {os.getpid(): True}
        with self._locked():
            held = same = 0
            free: int | None = None
            for index, pid, owner in self._records():
                if pid and not alive.setdefault(pid, _exists(pid)):
                    _RECORD.pack_into(self._map, index * _RECORD.size, 0, b"")
                    pid = 0
                if not pid:
                    free = index if free is None else free
                    continue
                held += 1
                same += owner == key
            if held >= total or free is None:
                raise LimitReached(f"association limit of {total} reached")
            if same >= per_peer:
                raise LimitReached(f"per-peer association limit of {per_peer} reached")
            _RECORD.pack_into(self._map, free * _RECORD.size, os.getpid(), key)
            return free

    def release(self, index: int) -> None:
        """Free the record ``index`` (a claim of this process)."""
        with self._locked():
            pid, _ = _RECORD.unpack_from(self._map, index * _RECORD.size)
            if pid == os.getpid():
                _RECORD.pack_into(self._map, index * _RECORD.size, 0, b"")

    def release_pid(self, pid: int) -> int:
        """Free every record of process ``pid`` (it has ended); returns how many."""
        freed = 0
        with self._locked():
            for index, owner, _ in self._records():
                if owner == pid:
                    _RECORD.pack_into(self._map, index * _RECORD.size, 0, b"")
                    freed += 1
        return freed

    def held(self) -> dict[int, int]:
        """Records held, by process id."""
        counts: dict[int, int] = {}
        with self._locked():
            for _, pid, _ in self._records():
                if pid:
                    counts[pid] = counts.get(pid, 0) + 1
        return counts

    def close(self) -> None:
        """Unmap the table and close its descriptor in this process."""
        self._map.close()
        os.close(self.fd)


def _key(peer: str) -> bytes:
    """``peer`` as stored in a record (as :meth:`struct.Struct.unpack` returns it)."""
    width = _RECORD.size - 4
    return peer.encode("utf-8", "replace")[:width].ljust(width, b"\0")


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True

"""Which SCP process of a node (``node.processes``) holds an association, from ``/proc``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testkit.nodeproc import NodeProcess

__all__ = ["elsewhere", "holder_of", "scp_processes"]


def scp_processes(parent: int) -> set[int]:
    """Process ids of the SCP processes of the node whose main process is ``parent``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"dicomnode.net.scp_child" in cmdline:
            found.add(int(entry))
    return found


def _socket_inodes(port: int, client_port: int) -> set[str]:
    """``socket:[inode]`` of the server end of the connection ``client_port`` → ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
            if local == port and remote == client_port:
                inodes.add(f"socket:[{fields[9]}]")
    return inodes


def holder_of(node: NodeProcess, assoc: Any, timeout: float = 5) -> int:
    """The SCP process of ``node`` that holds the server end of the association ``assoc``
    (a pynetdicom requestor's); AssertionError when none is found within ``timeout``."""
    assert node.proc is not None
    client_port = assoc.dul.socket.socket.getsockname()[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inodes = _socket_inodes(node.port, client_port)
        for pid in scp_processes(node.proc.pid):
            try:
                links = {
                    os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")
                }
            except OSError:
                continue
            if links & inodes:
                return pid
        time.sleep(0.01)
    raise AssertionError("no SCP process holds the association")


def elsewhere(node: NodeProcess, than: int, associate: Callable[[], Any]) -> Any:
    """An association made by ``associate`` that another SCP process than ``than`` holds
    (re-associating until one does; the kernel hands connections to either)."""
    for _ in range(40):
        assoc = associate()
        if assoc.is_established and holder_of(node, assoc) != than:
            return assoc
        if assoc.is_established:
            assoc.release()
        time.sleep(0.05)  # a released slot is freed once the SCP has seen the release
    raise AssertionError("no association reached another SCP process")

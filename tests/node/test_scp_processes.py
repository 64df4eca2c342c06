"""``node.processes``: several SCP processes on one port, limits global, crashes recovered.

Each test starts a node with two SCP processes and finds which process holds an association
from ``/proc`` (the server end of its TCP connection), so that it can assert across processes.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from testkit import dicomgen
from testkit.crash import acknowledged_files, instance_count, start_storescu, store_state, wait
from testkit.nodeproc import storescu
from testkit.seriesgen import write_series

_REJECTED_TRANSIENT, _SOURCE_PROVIDER_PRESENTATION, _LOCAL_LIMIT = 2, 3, 2


def _children(parent: int) -> set[int]:
    """Process ids of the SCP processes of the node ``parent``."""
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


def _holder(node, client_port: int) -> int | None:
    """The SCP process holding the server end of the connection from ``client_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
            if local == node.port and remote == client_port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in _children(node.proc.pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    return None


def _associate(node, ae_title: str):
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    return ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")


def _holder_of(node, assoc) -> int:
    port = assoc.dul.socket.socket.getsockname()[1]
    holder = None
    deadline = time.monotonic() + 5
    while holder is None and time.monotonic() < deadline:
        holder = _holder(node, port)
    assert holder is not None, "no SCP process holds the association"
    return holder


def _elsewhere(node, ae_title: str, than: int):
    """An association of ``ae_title`` held by another SCP process than ``than``."""
    for _ in range(40):
        assoc = _associate(node, ae_title)
        if assoc.is_established and _holder_of(node, assoc) != than:
            return assoc
        if assoc.is_established:
            assoc.release()
        time.sleep(0.05)  # the released slot is freed when the SCP has seen the release
    raise AssertionError(f"no association of {ae_title} reached another SCP process")


def _assert_local_limit(assoc) -> None:
    assert assoc.is_rejected
    primitive = assoc.acceptor.primitive
    assert (primitive.result, primitive.result_source, primitive.diagnostic) == (
        _REJECTED_TRANSIENT,
        _SOURCE_PROVIDER_PRESENTATION,
        _LOCAL_LIMIT,
    )


def _alerts(node, peer: str) -> list[str]:
    rows = node.query(
        f"select detail from audit_events where kind='security.alert' and peer='{peer}'"
    )
    return [detail for (detail,) in rows]


def test_association_limits_count_the_associations_of_every_scp_process(node_factory):
    node = node_factory(
        node={"processes": 2, "max_associations": 3, "max_associations_per_peer": 2}
    ).start()
    assert len(_children(node.proc.pid)) == 2
    first = _associate(node, "HOLDER")
    assert first.is_established
    # one association of HOLDER in each process: neither process alone is at a limit
    second = _elsewhere(node, "HOLDER", than=_holder_of(node, first))

    _assert_local_limit(_associate(node, "HOLDER"))
    other = _associate(node, "OTHER")
    assert other.is_established
    _assert_local_limit(_associate(node, "LATE"))
    wait(lambda: len(_alerts(node, "LATE@127.0.0.1")) == 1, "the alert of LATE", 10)
    assert _alerts(node, "LATE@127.0.0.1") == ["rejected: association limit of 3 reached"]
    assert _alerts(node, "HOLDER@127.0.0.1")[-1:] == [
        "rejected: per-peer association limit of 2 reached"
    ]

    # A released slot is free for an association that any process takes.
    first.release()
    wait(lambda: _associate_and_release(node, "LATE"), "a slot after the release", 10)
    for assoc in (second, other):
        assoc.release()


def _associate_and_release(node, ae_title: str) -> bool:
    assoc = _associate(node, ae_title)
    established = assoc.is_established
    if established:
        assoc.release()
    return established


def test_a_killed_scp_process_loses_nothing_acknowledged_and_is_replaced(node_factory, tmp_path):
    node = node_factory(node={"processes": 2}).start()
    (spec,) = dicomgen.study("kill-scp-process", [100])
    files = write_series(spec, tmp_path / "series")
    sender = start_storescu(node.port, files)
    wait(lambda: instance_count(node, spec.series_uid) >= 20, "20 instances stored")
    before = _children(node.proc.pid)
    holders = {_holder_sending(node, pid) for pid in before} - {None}
    (victim,) = holders
    os.kill(victim, signal.SIGKILL)
    output, _ = sender.communicate(timeout=60)
    acked = [Path(name) for name in acknowledged_files(output)]
    assert 20 <= len(acked) < len(files), output[-2000:]

    # A new process takes the dead one's place, and the node goes on receiving.
    wait(lambda: len(_children(node.proc.pid) - before) == 1, "a replacement", 30)
    assert _children(node.proc.pid) & before == before - {victim}
    wait(lambda: store_state(node, acked).consistent, "a consistent store", 15)
    rest = storescu(node.port, [f for f in files if f not in acked])
    assert rest.returncode == 0, rest.stderr
    assert instance_count(node, spec.series_uid) == len(files)
    assert store_state(node, []).consistent  # no orphans, rows without file, or spool

    # SIGTERM stops the node and every SCP process with it.
    children = _children(node.proc.pid)
    node.stop()
    assert node.proc.returncode == 0
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


def _holder_sending(node, pid: int) -> int | None:
    """``pid`` when it holds an established connection on the node's port."""
    try:
        fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local = int(fields[1].rsplit(":", 1)[1], 16)
        established = fields[3] == "01"
        if local == node.port and established and f"socket:[{fields[9]}]" in fds:
            return pid
    return None

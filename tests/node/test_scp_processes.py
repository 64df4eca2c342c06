"""``node.processes``: several SCP processes on one port, limits global, crashes recovered.

Each test starts a node with two SCP processes and finds which process holds an association
(:mod:`testkit.scp_processes`), so that it can assert across processes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from testkit import dicomgen
from testkit.crash import acknowledged_files, instance_count, start_storescu, store_state, wait
from testkit.nodeproc import storescu
from testkit.scp_processes import elsewhere, holder_of, scp_processes
from testkit.seriesgen import write_series

_REJECTED_TRANSIENT, _SOURCE_PROVIDER_PRESENTATION, _LOCAL_LIMIT = 2, 3, 2


def _associate(node, ae_title: str):
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    return ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")


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
    assert len(scp_processes(node.proc.pid)) == 2
    first = _associate(node, "HOLDER")
    assert first.is_established
    # one association of HOLDER in each process: neither process alone is at a limit
    second = elsewhere(node, holder_of(node, first), lambda: _associate(node, "HOLDER"))

    _assert_local_limit(_associate(node, "HOLDER"))
    other = _associate(node, "OTHER")
    assert other.is_established
    _assert_local_limit(_associate(node, "LATE"))
    # each alert is written by the process that rejected, after the peer saw the rejection
    wait(lambda: len(_alerts(node, "LATE@127.0.0.1")) == 1, "the alert of LATE", 10)
    wait(lambda: _alerts(node, "HOLDER@127.0.0.1"), "the alert of HOLDER", 10)
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
    # Enough data that the association is still sending when the victim is looked for: 100
    # instances of 32x32 were all sent (and the association gone) before it, on a quiet box.
    (spec,) = dicomgen.study("kill-scp-process", [400], rows=256, columns=256)
    files = write_series(spec, tmp_path / "series")
    sender = start_storescu(node.port, files)
    wait(lambda: instance_count(node, spec.series_uid) >= 20, "20 instances stored")
    before = scp_processes(node.proc.pid)
    holders: set[int] = set()

    def holder_found() -> bool:
        holders.update({_holder_sending(node, pid) for pid in before} - {None})
        return bool(holders)

    wait(holder_found, "the SCP process holding the association", 10)
    (victim,) = holders
    os.kill(victim, signal.SIGKILL)
    output, _ = sender.communicate(timeout=60)
    acked = [Path(name) for name in acknowledged_files(output)]
    assert 20 <= len(acked) < len(files), output[-2000:]

    # A new process takes the dead one's place, and the node goes on receiving.
    wait(lambda: len(scp_processes(node.proc.pid) - before) == 1, "a replacement", 30)
    assert scp_processes(node.proc.pid) & before == before - {victim}
    wait(lambda: store_state(node, acked).consistent, "a consistent store", 15)
    rest = storescu(node.port, [f for f in files if f not in acked])
    assert rest.returncode == 0, rest.stderr
    assert instance_count(node, spec.series_uid) == len(files)
    assert store_state(node, []).consistent  # no orphans, rows without file, or spool

    # SIGTERM stops the node and every SCP process with it.
    children = scp_processes(node.proc.pid)
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

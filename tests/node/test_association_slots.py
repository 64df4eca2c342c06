"""The association limits' shared table (:mod:`dicomnode.net.slots`), across processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dicomnode.net.slots import AssociationSlots, LimitReached

#: A process that claims one slot of the inherited table, says so, and waits to be killed.
_HOLDER = """
import sys
from dicomnode.net.slots import AssociationSlots
slots = AssociationSlots(int(sys.argv[1]))
print(slots.claim(sys.argv[2], total=int(sys.argv[3]), per_peer=int(sys.argv[3])), flush=True)
sys.stdin.read()
"""


def _holder(slots: AssociationSlots, peer: str, total: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(slots.fd), peer, str(total)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=(slots.fd,),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip().isdigit()  # it holds its slot
    return proc


def test_claims_of_another_process_count_and_are_freed_when_it_dies():
    slots = AssociationSlots()
    try:
        holder = _holder(slots, "A@10.0.0.1", total=2)
        assert slots.held() == {holder.pid: 1}
        with pytest.raises(LimitReached, match="per-peer association limit of 1 reached"):
            slots.claim("A@10.0.0.1", total=2, per_peer=1)
        mine = slots.claim("B@10.0.0.2", total=2, per_peer=1)
        with pytest.raises(LimitReached, match="association limit of 2 reached"):
            slots.claim("C@10.0.0.3", total=2, per_peer=1)

        holder.kill()
        holder.wait()
        # a dead process's claim is freed by the next claim (before its parent reaps it too)
        slots.claim("C@10.0.0.3", total=2, per_peer=1)
        assert slots.held() == {os.getpid(): 2}
        slots.release(mine)
        assert sum(slots.held().values()) == 1
    finally:
        slots.close()


def test_release_pid_frees_every_claim_of_an_ended_process():
    slots = AssociationSlots()
    try:
        holders = [_holder(slots, f"P{n}@10.0.0.{n}", total=10) for n in range(2)]
        assert slots.release_pid(holders[0].pid) == 1
        assert set(slots.held()) == {holders[1].pid}
        for holder in holders:
            holder.kill()
            holder.wait()
    finally:
        slots.close()

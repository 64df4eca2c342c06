"""kill -9 a node subprocess while dcmtk's storescu sends it a series; check the store after.

Shared by ``tests/node/test_crash_many.py`` and ``bench/crash.py``.
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset, dcmread

from testkit.nodeproc import DCMTK_ENV, STORESCU, NodeProcess

__all__ = [
    "KillRounds",
    "SentCache",
    "StoreState",
    "acknowledged_files",
    "instance_count",
    "send_with_kills",
    "start_storescu",
    "store_state",
    "wait",
]

_SENT = re.compile(r"Sending file: (\S+)")
_OK = re.compile(r"Received Store Response \(Success\)")


def start_storescu(port: int, paths: list[Path], *extra: str) -> subprocess.Popen[str]:
    """dcmtk's storescu in the background, ``-v`` log on its stdout (see acknowledged_files)."""
    return subprocess.Popen(
        [STORESCU, "-v", "-nh", "-aec", "DICOMNODE", *extra, "127.0.0.1", str(port)]
        + [str(path) for path in paths],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=DCMTK_ENV,
    )


def acknowledged_files(output: str) -> list[str]:
    """Files storescu saw answered with Success, from its ``-v`` log."""
    acked: list[str] = []
    current = None
    for line in output.splitlines():
        if m := _SENT.search(line):
            current = m.group(1)
        elif _OK.search(line) and current:
            acked.append(current)
            current = None
    return acked


@dataclass(frozen=True)
class StoreState:
    """The store of a (restarted) node against what storescu saw acknowledged.

    ``lost``: acknowledged files without a row, or whose stored file differs from the row's
    sha256 or from the sent dataset. ``orphans``: files without a row. ``rows_without_file``:
    rows whose file is missing. ``spool``: entries left in ``<store>/.incoming``.
    """

    acknowledged: int
    rows: int
    lost: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()
    rows_without_file: tuple[str, ...] = ()
    spool: tuple[str, ...] = ()

    @property
    def consistent(self) -> bool:
        return not (self.lost or self.orphans or self.rows_without_file or self.spool)


@dataclass
class SentCache:
    """What :func:`store_state` read before: the sent datasets, and the stored files found
    equal to them, by sha256 (a file with the same digest needs no second parse and compare:
    the rounds of a crash test check the same files again after every restart)."""

    datasets: dict[Path, Dataset] = field(default_factory=dict)
    verified: set[tuple[Path, str]] = field(default_factory=set)

    def dataset(self, path: Path) -> Dataset:
        """The dataset sent from ``path`` (read once)."""
        if path not in self.datasets:
            self.datasets[path] = dcmread(path)
        return self.datasets[path]

    def same(self, path: Path, stored: Path, digest: str) -> bool:
        """Whether ``stored`` (whose sha256 is ``digest``) holds the dataset sent from ``path``."""
        if (path, digest) not in self.verified:
            if dcmread(stored) != self.dataset(path):
                return False
            self.verified.add((path, digest))
        return True


def store_state(
    node: NodeProcess, acknowledged: Collection[Path], sent: SentCache | None = None
) -> StoreState:
    """Compare ``node``'s store and DB with the ``acknowledged`` files (``sent``: a cache)."""
    sent = SentCache() if sent is None else sent
    rows = {
        sop: (rel, sha)
        for sop, rel, sha in node.query("select sop_instance_uid, path, sha256 from instances")
    }
    lost: list[str] = []
    for name in sorted(acknowledged):
        row = rows.get(sent.dataset(name).SOPInstanceUID)
        stored = node.store / row[0] if row else None
        if row is None or stored is None or not stored.is_file():
            lost.append(str(name))
            continue
        digest = hashlib.sha256(stored.read_bytes()).hexdigest()
        if digest != row[1] or not sent.same(name, stored, digest):
            lost.append(str(name))
    on_disk = {p.relative_to(node.store).as_posix() for p in node.stored_files()}
    indexed = {rel for rel, _ in rows.values()}
    return StoreState(
        acknowledged=len(acknowledged),
        rows=len(rows),
        lost=tuple(lost),
        orphans=tuple(sorted(on_disk - indexed)),
        rows_without_file=tuple(sorted(indexed - on_disk)),
        spool=tuple(sorted(p.name for p in (node.store / ".incoming").iterdir())),
    )


def instance_count(node: NodeProcess, series_uid: str) -> int:
    """Rows of ``series_uid`` in the node's ``instances`` table."""
    (count,) = node.query(
        "select count(*) from instances i join series s on i.series_id = s.id "
        f"where s.series_uid = '{series_uid}'"
    )[0]
    return int(count)


def wait(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``predicate`` every 10 ms until true; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.01)


@dataclass
class KillRounds:
    """What :func:`send_with_kills` did: the files acknowledged, a store state per restart."""

    acknowledged: set[Path] = field(default_factory=set)
    states: list[StoreState] = field(default_factory=list)
    new_per_round: list[int] = field(default_factory=list)
    sender_done_before_kill: int = 0

    @property
    def rounds(self) -> int:
        return len(self.new_per_round)


def send_with_kills(
    node: NodeProcess,
    files: list[Path],
    series_uid: str,
    *,
    kills: int,
    rng: random.Random,
    new: tuple[int, int] = (2, 10),
    sent: SentCache | None = None,
) -> KillRounds:
    """Start ``node``, send what it has not acknowledged, kill -9 it; ``kills`` times.

    Each round starts the node (recovery runs at start-up), records :func:`store_state`,
    sends the files storescu has not yet seen acknowledged (instances stored but not answered
    come again: duplicates, answered with Success) and kills the node once a random number
    in ``new`` of new instances has arrived. The node is left killed.
    """
    done = KillRounds()
    for _ in range(kills):
        node.start()
        done.states.append(store_state(node, done.acknowledged, sent))
        remainder = [f for f in files if f not in done.acknowledged]
        before = instance_count(node, series_uid)
        target = min(before + rng.randint(*new), len(files) - 1)
        sender = start_storescu(node.port, remainder)
        wait(
            lambda t=target, s=sender: (
                instance_count(node, series_uid) >= t or s.poll() is not None
            ),
            f"{target} instances of the series stored",
        )
        node.kill()
        output, _ = sender.communicate(timeout=60)
        acked = [Path(name) for name in acknowledged_files(output)]
        done.sender_done_before_kill += len(acked) == len(remainder)
        done.acknowledged.update(acked)
        done.new_per_round.append(instance_count(node, series_uid) - before)
    return done

"""One SCP process per core (``node.processes``): the parent's side.

The node's main process binds the DICOM port once and hands the listening socket to
``node.processes`` children (:mod:`dicomnode.net.scp_child`), each a whole
:class:`~dicomnode.net.scp.StorageSCP` with its own pynetdicom AE and database connections,
all accepting on that one socket. An inherited socket rather than ``SO_REUSEPORT``: one
process owns the port (a second node on it fails at bind, as before; port 0 means one port),
the kernel hands each connection to whichever child is idle in ``accept`` (with
``SO_REUSEPORT`` a hash of the peer's address picks a child, busy or not), and TLS and the
guarded server (:mod:`dicomnode.net.server`) work unchanged in each child.

What stays global across the children: the association limits (a shared table,
:mod:`dicomnode.net.slots`); the allow-list (the same config in each, reloads sent to each);
the audit trail, store and spool (the database and the filesystem; spool files are named by
process; audit messages for ``audit.syslog`` go through the parent's one forwarder). The
parent keeps what must run once: the periodic sweeps, the C-FIND confirmation, routing of
completions. Each child tells its parent, over its own socket pair
(:class:`Channel`), what the parent's metrics, signals and confirmations need.

A child that dies (crash, ``kill -9``) is restarted; what it acknowledged is on disk and
indexed (each instance is fsync'd and committed before its Success), its half-received spool
files are removed, its association slots freed, and the files it renamed into place without
committing their rows (a kill between the two) are indexed. Children die with the parent
(``PR_SET_PDEATHSIG``) and stop on SIGTERM.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dicomnode.config.schema import Config, NodeConfig
from dicomnode.net.receive import ScpObserver
from dicomnode.net.scp import Delivery, DeliveryCallback
from dicomnode.net.signals import OnSignal
from dicomnode.net.slots import AssociationSlots
from dicomnode.net.spool import SPOOL_PREFIX
from dicomnode.startup import StartupError
from dicomnode.store.audit import AuditEntry, AuditSink
from dicomnode.store.ingest import Store
from dicomnode.store.recovery import recover_interrupted
from dicomnode.store.stability import SweepResult

__all__ = ["Channel", "ChildStatus", "Message", "ScpProcesses", "spool_prefix"]

log = logging.getLogger(__name__)

#: Seconds a child has to start listening.
START_TIMEOUT = 60.0
#: Seconds a child has to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: A child that ended within this many seconds of its start is restarted after a pause.
QUICK_DEATH = 5.0
#: Series folders changed this many seconds before a child's end are searched for files it
#: renamed into place without committing (its last transaction took milliseconds).
ORPHAN_WINDOW = 60.0
#: Observer events a child may report (the methods of :class:`ScpObserver`).
_OBSERVED = frozenset({"association", "stored", "store_failed", "security_alert"})


class Message(str, enum.Enum):
    """What parent and children tell each other (``message`` of a :class:`Channel` line)."""

    READY = "ready"  # child: listening
    FAILED = "failed"  # child: cannot start (``error``)
    OBSERVED = "observed"  # child: an ScpObserver event (``event`` and its arguments)
    SIGNALLED = "signalled"  # child: completions a signal made (``series``, ``studies``)
    RELEASED = "released"  # child: a released association stored (``peer``, ``studies``…)
    AUDITED = "audited"  # child: a committed audit row for the syslog forwarder
    NODE_CONFIG = "node_config"  # parent: the reloaded ``node`` section (``config``)


def spool_prefix(pid: int) -> str:
    """Names of the spool files of SCP process ``pid`` start with this."""
    return f"{SPOOL_PREFIX}{pid}-"


class Channel:
    """JSON lines over one end of a socket pair; :meth:`send` is thread-safe, never raises.

    Parameters
    ----------
    sock : socket.socket
        A connected stream socket.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._send = threading.Lock()
        self._buffer = b""

    def send(self, message: Message, /, **values: Any) -> bool:
        """Send one message; False when the other end is gone."""
        line = json.dumps({"message": message.value, **values}, separators=(",", ":")) + "\n"
        try:
            with self._send:
                self.sock.sendall(line.encode())
        except OSError:
            return False
        return True

    def receive(self) -> list[dict[str, Any]] | None:
        """The messages that one read brings (blocking); None at the end of the stream."""
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            return None
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        return [json.loads(line) for line in lines if line]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (messages := self.receive()) is not None:
            yield from messages

    def close(self) -> None:
        """Close this end."""
        self.sock.close()


@dataclass(frozen=True)
class ChildStatus:
    """One SCP process as ``/metrics`` shows it."""

    index: int
    pid: int
    ready: bool


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes]
    channel: Channel
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    ready: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


class ScpProcesses:
    """The node's SCP children, sharing one listening socket; restarts those that die.

    Parameters
    ----------
    config : Config
        The node's config (each child builds its SCP, store and database from it).
    count : int
        How many children.
    observer : ScpObserver
        Told about the children's associations and stores (the node's metrics).
    on_signal : OnSignal
        Told about completions a child's completion signal made.
    on_released : DeliveryCallback, optional
        Told what a child's released association stored (C-FIND confirmation).
    audit : AuditSink, optional
        Where the children's committed audit rows go (``audit.syslog``: the forwarder of this
        process, so that the node has one connection, one Application Start and Stop).
    store : Store, optional
        The store, in this process: after a child died, the files it renamed into place
        but did not commit are indexed (:func:`~dicomnode.store.recovery.recover_interrupted`).
    """

    def __init__(
        self,
        config: Config,
        count: int,
        *,
        observer: ScpObserver,
        on_signal: OnSignal,
        on_released: DeliveryCallback | None = None,
        audit: AuditSink | None = None,
        store: Store | None = None,
    ):
        if count < 2:
            raise ValueError(f"count must be at least 2 (1 is the in-process SCP), not {count}")
        self.config = config
        self.count = count
        self.observer = observer
        self.on_signal = on_signal
        self.on_released = on_released
        self.audit = audit
        self.store = store
        #: children restarted since the start
        self.restarts = 0
        self._children: dict[int, _Child] = {}
        self._listening: socket.socket | None = None
        self.slots = AssociationSlots()
        self._selector = selectors.DefaultSelector()
        self._stopping = threading.Event()
        self._started = False
        self._supervisor: threading.Thread | None = None
        self._due: dict[int, float] = {}  # index of a child to restart -> when

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._listening is None:
            raise RuntimeError("the SCP processes are not running")
        return int(self._listening.getsockname()[1])

    def start(self) -> None:
        """Bind, start the children and wait until each one listens.

        Raises
        ------
        StartupError
            The port cannot be bound, or a child failed to start (its reason).
        """
        node = self.config.node
        family = socket.AF_INET6 if ":" in node.host else socket.AF_INET
        # Bound here, listened on by the first child that is ready (GuardedServer's
        # server_activate): until then a sender is refused, as by a node not started yet,
        # instead of waiting in a backlog that nobody accepts from.
        self._listening = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listening.bind((node.host, node.port))
        except OSError as exc:
            self._listening.close()
            self._listening = None
            raise StartupError(f"DICOM port {node.port} on {node.host}: {exc.strerror}") from None
        for index in range(self.count):
            self._spawn(index, resume=index == 0)
        self._supervisor = threading.Thread(
            target=self._supervise, name="dicomnode-scp-processes", daemon=True
        )
        self._supervisor.start()
        deadline = time.monotonic() + START_TIMEOUT
        for child in list(self._children.values()):
            if not child.ready.wait(max(0.0, deadline - time.monotonic())):
                raise StartupError(f"SCP process {child.index} did not start in time")
            if child.error is not None:
                raise StartupError(child.error)
        self._started = True
        log.info(
            "listening",
            extra={
                "ae_title": node.ae_title,
                "host": node.host,
                "port": self.port,
                "tls": node.tls is not None,
                "processes": self.count,
            },
        )

    def _spawn(self, index: int, *, resume: bool) -> None:
        """Start child ``index`` (MPPS steps are resumed by the first one and by restarts)."""
        assert self._listening is not None
        parent_end, child_end = socket.socketpair()
        command = [
            sys.executable,
            "-m",
            "dicomnode.net.scp_child",
            f"--listen-fd={self._listening.fileno()}",
            f"--slots-fd={self.slots.fd}",
            f"--channel-fd={child_end.fileno()}",
            f"--parent={os.getpid()}",
        ]
        if resume:
            command.append("--resume")
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                pass_fds=(self._listening.fileno(), self.slots.fd, child_end.fileno()),
            )
        finally:
            child_end.close()
        assert proc.stdin is not None
        try:
            with proc.stdin:
                proc.stdin.write(self.config.model_dump_json().encode())
        except OSError:  # it died at once: its channel's end says so
            log.warning("SCP process %d took no config", index)
        child = _Child(index, proc, Channel(parent_end))
        self._children[index] = child
        self._selector.register(parent_end, selectors.EVENT_READ, child)

    def _supervise(self) -> None:
        """Read the children's messages; restart those that end (until :meth:`stop`)."""
        while not self._stopping.is_set():
            # a child's end closes its channel and wakes this at once; the timeout only
            # paces restarts that wait (and the look at the stop flag)
            for key, _ in self._selector.select(timeout=0.2 if self._due else 1.0):
                child: _Child = key.data
                messages = child.channel.receive()
                if messages is None:
                    self._selector.unregister(key.fileobj)
                    self._ended(child)
                    continue
                for message in messages:
                    self._dispatch(child, message)
            now = time.monotonic()
            for index, when in list(self._due.items()):
                if when <= now and not self._stopping.is_set():
                    del self._due[index]
                    self.restarts += 1
                    self._spawn(index, resume=True)

    def _dispatch(self, child: _Child, message: dict[str, Any]) -> None:
        try:
            kind = Message(message.pop("message"))
            if kind is Message.OBSERVED:
                event = message.pop("event")
                if event in _OBSERVED:
                    getattr(self.observer, event)(**message)
            elif kind is Message.READY:
                child.ready.set()
            elif kind is Message.FAILED:
                child.error = str(message.get("error"))
            elif kind is Message.SIGNALLED:
                self.on_signal(SweepResult(series=message["series"], studies=message["studies"]))
            elif kind is Message.AUDITED and self.audit is not None:
                self.audit(AuditEntry(at=datetime.fromisoformat(message.pop("at")), **message))
            elif kind is Message.RELEASED and self.on_released is not None:
                self.on_released(
                    Delivery(
                        peer=message["peer"],
                        studies=frozenset(message["studies"]),
                        series=frozenset(message["series"]),
                    )
                )
        except Exception:  # a message the parent cannot act on must not stop the supervisor
            log.exception("message of SCP process %d not handled", child.index)

    def _ended(self, child: _Child) -> None:
        """Child's channel closed: it has ended. Reap it, clean up after it, restart it."""
        try:
            code = child.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # closed its channel but lives on: end it
            child.proc.kill()
            code = child.proc.wait()
        child.channel.close()
        pid = child.proc.pid
        freed = self.slots.release_pid(pid)
        removed = _remove_spool(Path(self.config.store_path) / ".incoming", pid)
        if child.error is None and not child.ready.is_set():
            child.error = f"SCP process {child.index} exited with status {code} at start-up"
        child.ready.set()
        if self._stopping.is_set() or not self._started:
            return
        quick = time.monotonic() - child.started < QUICK_DEATH
        log.warning(
            "SCP process ended; restarting",
            extra={
                "index": child.index,
                "pid": pid,
                "status": code,
                "slots_freed": freed,
                "spool_removed": removed,
            },
        )
        self._due[child.index] = time.monotonic() + (1.0 if quick else 0.0)
        if self.store is not None:
            threading.Thread(
                target=self._recover,
                args=(self.store, max(child.started_at, time.time() - ORPHAN_WINDOW)),
                name="dicomnode-scp-recovery",
                daemon=True,
            ).start()

    @staticmethod
    def _recover(store: Store, since: float) -> None:
        try:
            recover_interrupted(store, since=since)
        except Exception:  # the next start-up's recovery indexes them
            log.exception("recovery after an SCP process ended failed")

    def reload(self, node: NodeConfig) -> None:
        """Send a reloaded ``node`` section (allow-list, limits) to every child."""
        self.config = self.config.model_copy(update={"node": node})
        for child in list(self._children.values()):
            child.channel.send(Message.NODE_CONFIG, config=node.model_dump(mode="json"))

    def status(self) -> list[ChildStatus]:
        """The children, running or being restarted."""
        return [
            ChildStatus(c.index, c.proc.pid, c.ready.is_set() and c.proc.poll() is None)
            for c in sorted(self._children.values(), key=lambda c: c.index)
        ]

    def stop(self) -> None:
        """SIGTERM every child, wait for them (kill those that take too long), close."""
        self._stopping.set()
        children = list(self._children.values())
        for child in children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in children:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("SCP process %d did not stop; killed", child.index)
                child.proc.kill()
                child.proc.wait()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for child in children:
            child.channel.close()
        self._selector.close()
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        self.slots.close()


def _remove_spool(incoming: Path, pid: int) -> int:
    """Remove the spool files of the ended SCP process ``pid``; returns how many."""
    removed = 0
    for path in incoming.glob(f"{spool_prefix(pid)}*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed

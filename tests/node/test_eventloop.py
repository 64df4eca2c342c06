"""The event-driven reactors (dicomnode.net.eventloop) on real pynetdicom associations.

A plain pynetdicom server whose acceptor associations are made event-driven (nothing else of
the node), a pynetdicom SCU on loopback: stores and echoes go through, the peer's release and
abort and a local abort end the association, the network timeout still fires, and an idle
association's threads use no CPU (pynetdicom's own reactors poll every millisecond).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from dicomnode.net import framing
from dicomnode.net.eventloop import NotifyingQueue, SocketWaker, install
from testkit import dicomgen


class _EventDrivenHandler(RequestHandler):
    def _create_association(self) -> Association:
        assoc = super()._create_association()
        install(assoc)
        return assoc


class _FramedHandler(RequestHandler):
    """As the node does: the DUL polls for PDUs through the framing layer's reader."""

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        limits = framing.FramingLimits(self.ae.maximum_pdu_size or 16384)
        install(assoc, framing.install(assoc.dul, limits, lambda detail: None))
        return assoc


class _PollingHandler(RequestHandler):
    """pynetdicom as shipped (the control for the idle-CPU test)."""


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    """Poll ``condition`` until true; seconds it took. Fails the test at ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - started


class _Server:
    """An SCP (Verification, CT storage) on a free loopback port; records events."""

    def __init__(self, handler: type[RequestHandler], network_timeout: float = 30):
        self.stored: list[str] = []
        self.events: list[str] = []
        self.ae = AE(ae_title="EVLOOP")
        self.ae.network_timeout = network_timeout
        self.ae.acse_timeout = 5
        self.ae.add_supported_context(Verification)
        self.ae.add_supported_context(CTImageStorage)
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._store),
            (evt.EVT_RELEASED, lambda e: self.events.append("released")),
            (evt.EVT_ABORTED, lambda e: self.events.append("aborted")),
        ]
        self.server = self.ae.make_server(
            ("127.0.0.1", 0),
            evt_handlers=handlers,
            server_class=ThreadedAssociationServer,
            request_handler=handler,
        )
        assert isinstance(self.server, ThreadedAssociationServer)
        self.port = int(self.server.server_address[1])
        self.ae._servers.append(self.server)  # as start_server() does; shutdown() removes it
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _store(self, event: Any) -> int:
        self.stored.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    def acceptor(self) -> Association:
        _wait_for(lambda: bool(self.server.active_associations))
        return self.server.active_associations[0]

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(params=[_EventDrivenHandler, _FramedHandler], ids=["ready", "poll_pdu"])
def server(request: pytest.FixtureRequest) -> Iterator[_Server]:
    """The DUL looking for PDUs with pynetdicom's check, or with the framing layer's poll."""
    srv = _Server(request.param)
    yield srv
    srv.stop()


def _associate(port: int) -> Association:
    ae = AE(ae_title="SCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title="EVLOOP")
    assert assoc.is_established
    sock = assoc.dul.socket
    assert sock is not None and sock.socket is not None
    sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # PITFALLS: Nagle
    return assoc


def test_notifying_queue_tells_each_put_and_adopts_in_order() -> None:
    told: list[int] = []
    old: queue.Queue[str] = queue.Queue()
    old.put("a")
    old.put("b")
    new = NotifyingQueue.adopt(old, lambda: told.append(1))
    new.put("c")
    assert [new.get_nowait() for _ in range(3)] == ["a", "b", "c"]
    assert len(told) == 1


def test_socket_waker_wakes_on_data_on_wake_and_on_timeout() -> None:
    waker = SocketWaker()
    waker.wake()  # not open yet: nothing happens
    waker.open()
    left, right = socket.socketpair()
    try:
        started = time.monotonic()
        waker.wait(left, 0.05)  # nothing: the timeout
        assert time.monotonic() - started >= 0.04
        threading.Timer(0.05, waker.wake).start()
        started = time.monotonic()
        waker.wait(left, 5)
        assert time.monotonic() - started < 2
        started = time.monotonic()
        waker.wait(left, 0.05)  # the wake-up was read by the wait it ended
        assert time.monotonic() - started >= 0.04
        right.send(b"x")
        started = time.monotonic()
        waker.wait(left, 5)
        assert time.monotonic() - started < 2
    finally:
        waker.close()
        left.close()
        right.close()


def test_stores_and_echoes_then_release(server: _Server, tmp_path: Path) -> None:
    paths = dicomgen.write_series(
        dicomgen.SeriesSpec(dicomgen.uid("study"), dicomgen.uid("series"), count=20), tmp_path
    )
    assoc = _associate(server.port)
    acceptor = server.acceptor()
    try:
        statuses = [int(assoc.send_c_store(path).Status) for path in paths]
        assert int(assoc.send_c_echo().Status) == 0
    finally:
        assoc.release()
    assert statuses == [0] * len(paths)
    assert len(server.stored) == len(paths)
    _wait_for(lambda: not acceptor.is_alive() and not acceptor.dul.is_alive())
    assert server.events == ["released"]


def test_poll_pdu_replaces_the_readiness_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the framing layer's poll the DUL never asks pynetdicom whether the socket is
    readable (a zero-timeout ``select`` before each PDU); without it, it asks each turn."""
    checks = 0
    ready = AssociationSocket.ready

    def counted(self: AssociationSocket) -> bool:
        nonlocal checks
        checks += self.assoc.is_acceptor  # the requestor here is pynetdicom's, polling
        return bool(ready.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(AssociationSocket, "ready", property(counted))
    paths = dicomgen.write_series(
        dicomgen.SeriesSpec(dicomgen.uid("study"), dicomgen.uid("poll"), count=5), tmp_path
    )
    counted_by: dict[str, int] = {}
    for name, handler in (("ready", _EventDrivenHandler), ("poll_pdu", _FramedHandler)):
        checks = 0
        srv = _Server(handler)
        try:
            assoc = _associate(srv.port)
            acceptor = srv.acceptor()
            assert [int(assoc.send_c_store(path).Status) for path in paths] == [0] * 5
            counted_by[name] = checks  # in Sta13, after the release, both use pynetdicom's
            assoc.release()
            _wait_for(lambda a=acceptor: not a.dul.is_alive())  # type: ignore[misc]
        finally:
            srv.stop()
    assert counted_by["ready"] >= 10, counted_by  # one per PDU at least: 5 commands, 5 data sets
    assert counted_by["poll_pdu"] == 0, counted_by


def test_peer_abort_ends_the_association(server: _Server) -> None:
    assoc = _associate(server.port)
    acceptor = server.acceptor()
    assoc.abort()
    _wait_for(lambda: not acceptor.is_alive() and not acceptor.dul.is_alive(), timeout=5)
    assert acceptor.is_aborted
    assert server.events == ["aborted"]


def test_local_abort_from_another_thread(server: _Server) -> None:
    assoc = _associate(server.port)
    acceptor = server.acceptor()
    threading.Thread(target=acceptor.abort).start()  # as the node's first-message timer does
    _wait_for(lambda: assoc.is_aborted, timeout=5)
    _wait_for(lambda: not acceptor.is_alive() and not acceptor.dul.is_alive(), timeout=5)


@pytest.mark.parametrize("handler", [_EventDrivenHandler, _FramedHandler])
def test_network_timeout_still_fires(handler: type[RequestHandler]) -> None:
    srv = _Server(handler, network_timeout=0.5)
    try:
        assoc = _associate(srv.port)
        took = _wait_for(lambda: assoc.is_aborted, timeout=10)
        assert 0.3 < took < 5
        assert srv.events == ["aborted"]
    finally:
        srv.stop()


def test_silent_connection_closed_at_acse_timeout(server: _Server) -> None:
    server.ae.acse_timeout = 0.5
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        started = time.monotonic()
        assert raw.recv(1024) == b""  # closed by the acceptor, nothing sent
        assert time.monotonic() - started < 5


def test_install_refuses_a_started_association(server: _Server) -> None:
    assoc = _associate(server.port)
    try:
        with pytest.raises(RuntimeError, match="before the association starts"):
            install(server.acceptor())
    finally:
        assoc.release()


def _thread_cpu(native_ids: list[int]) -> float:
    """CPU seconds (user + system) of this process's threads ``native_ids``."""
    total = 0
    for tid in native_ids:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_idle_association_uses_no_cpu() -> None:
    """An idle association's two threads: CPU over one second, event-driven vs pynetdicom."""
    used: dict[str, float] = {}
    for name, handler in (("event", _EventDrivenHandler), ("polling", _PollingHandler)):
        srv = _Server(handler)
        try:
            assoc = _associate(srv.port)
            acceptor = srv.acceptor()
            _wait_for(lambda a=acceptor: a.dul.native_id is not None)  # type: ignore[misc]
            ids = [acceptor.native_id, acceptor.dul.native_id]
            before = _thread_cpu(ids)  # type: ignore[arg-type]
            time.sleep(1.0)  # a measurement window, not a synchronisation
            used[name] = _thread_cpu(ids) - before  # type: ignore[arg-type]
            assoc.release()
        finally:
            srv.stop()
    assert used["event"] <= 0.011, used  # at most one clock tick
    assert used["event"] < used["polling"], used


def test_out_of_descriptors_falls_back_to_polling(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_descriptors(self: SocketWaker) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(SocketWaker, "open", no_descriptors)
    paths = dicomgen.write_series(
        dicomgen.SeriesSpec(dicomgen.uid("study"), dicomgen.uid("fallback"), count=3), tmp_path
    )
    assoc = _associate(server.port)
    acceptor = server.acceptor()
    try:
        assert [int(assoc.send_c_store(path).Status) for path in paths] == [0, 0, 0]
    finally:
        assoc.release()
    _wait_for(lambda: not acceptor.is_alive() and not acceptor.dul.is_alive())
    assert server.events == ["released"]

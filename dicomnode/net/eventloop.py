"""Event-driven reactors for pynetdicom 3.0.4 acceptor associations: block, never poll.

pynetdicom 3.0.4 polls on the receive path. Its DUL thread checks the socket and its queues
and sleeps ``_run_loop_delay`` (1 ms) whenever there was nothing to do; the association
thread sleeps 1 ms on every turn of its loop before it looks for a decoded DIMSE message. A
C-STORE waits up to a millisecond for each PDU that has not arrived yet, another for the
association to see the whole message and another for the DUL to send the response, and an
idle association wakes its two threads two thousand times a second.

:func:`install` makes one association event-driven, before it starts:

* its DUL thread blocks in a :mod:`selectors` wait on the socket and on a wake-up socket
  pair, until the peer sends, a local primitive is queued for the peer, an event is queued
  from another thread (a closed socket), the DUL is told to stop, or the ARTIM timer is due;
* its association thread blocks on an :class:`threading.Event` set when the DUL queues a
  decoded DIMSE message or an ACSE primitive, when the DUL thread ends or the association is
  killed, or when the network (idle) timeout is due.

Everything else is pynetdicom's: the same state machine actions, the same checks in the same
order, the same timers (ARTIM, ``network_timeout``, ``acse_timeout``, ``dimse_timeout``). Each
wait is also capped at :data:`MAX_WAIT` seconds, so that a wake-up that pynetdicom's code
might skip (a flag set directly) costs latency, never a hang.

The hooks are pynetdicom's own seams: ``Thread.run`` of the DUL (the documented way to give a
thread its body), the association's ``_run_reactor``, ``kill``, and the DUL's ``kill_dul`` and
``stop_dul``, and its queues, replaced by queues that tell the waiting thread about each
``put``. The same loops would fit ``DULServiceProvider.run_reactor`` and
``Association._run_reactor`` upstream.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import queue
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pynetdicom import _config, evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ

__all__ = ["MAX_WAIT", "NotifyingQueue", "SocketWaker", "install"]

log = logging.getLogger(__name__)

#: The longest any reactor blocks without looking at its timers and flags again (seconds).
MAX_WAIT = 1.0

T = TypeVar("T")


class NotifyingQueue(queue.Queue[T]):
    """A :class:`queue.Queue` that calls ``notify()`` after each item is put.

    Parameters
    ----------
    notify : callable
        Called with no argument, on the putting thread, with the queue's lock held: it must
        be quick and must not touch the queue.
    """

    def __init__(self, notify: Callable[[], None]):
        super().__init__()
        self._notify = notify

    def _put(self, item: T) -> None:
        super()._put(item)
        self._notify()

    @classmethod
    def adopt(cls, old: queue.Queue[T], notify: Callable[[], None]) -> NotifyingQueue[T]:
        """A notifying queue holding ``old``'s items, in order (``old`` is left as it was)."""
        new: NotifyingQueue[T] = cls(notify)
        with old.mutex:
            new.queue.extend(old.queue)
        return new


class SocketWaker:
    """Wait until a socket is readable or another thread calls :meth:`wake`.

    A non-blocking socket pair carries the wake-ups, so one :mod:`selectors` wait covers
    both (portable: no ``eventfd``, no pipes on Windows). The waiting thread calls
    :meth:`open` before its first look at what the wake-ups announce (until then
    :meth:`wake` does nothing) and :meth:`close` when done: an association that never
    starts holds no descriptors. A :meth:`wait` that a wake-up ended reads the wake-ups
    pending (the caller looks at what they announce next); one that the socket or the
    timeout ended leaves them to end the next.
    """

    def __init__(self) -> None:
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._watched: Any = None

    def open(self) -> None:
        """Create the socket pair and the selector."""
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(reader, selectors.EVENT_READ)
        self._reader, self._writer = reader, writer

    def wake(self) -> None:
        """Make the current or next :meth:`wait` return (from any thread; never raises)."""
        writer = self._writer
        if writer is None:
            return
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            writer.send(b"\0")

    def wait(self, sock: Any, timeout: float | None) -> None:
        """Block until ``sock`` is readable, :meth:`wake` is called, or ``timeout`` passes.

        Parameters
        ----------
        sock : socket.socket or None
            The connection to watch (``None``: only wake-ups and the timeout).
        timeout : float or None
            Seconds; ``None`` waits without a limit.
        """
        if self._selector is None:
            raise RuntimeError("SocketWaker.wait() before open()")
        self._watch(sock)
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self._reader:
                self._drain()

    def _drain(self) -> None:
        """Forget the wake-ups so far: the caller looks at what they announce next."""
        assert self._reader is not None
        with contextlib.suppress(OSError):
            while self._reader.recv(4096):
                pass

    def _watch(self, sock: Any) -> None:
        assert self._selector is not None
        if sock is self._watched:
            return
        if self._watched is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(self._watched)
        self._watched = None
        if sock is not None:
            try:
                self._selector.register(sock, selectors.EVENT_READ)
            except (ValueError, OSError):  # closed meanwhile: Evt17 is on its way
                return
            self._watched = sock

    def close(self) -> None:
        """Release the socket pair and the selector (:meth:`wake` does nothing after)."""
        reader, writer, selector = self._reader, self._writer, self._selector
        self._reader = self._writer = self._selector = None
        for closable in (selector, reader, writer):
            if closable is not None:
                closable.close()


def _timeout(remaining: float | None) -> float:
    """A wait for a timer with ``remaining`` seconds (``None``: none), capped at MAX_WAIT."""
    if remaining is None:
        return MAX_WAIT
    return min(MAX_WAIT, max(0.0, remaining))


def _remaining(timer: Any) -> float | None:
    """Seconds until a pynetdicom ``Timer`` expires; ``None`` if it never does."""
    if timer.timeout is None:
        return None
    return float(timer.remaining)


def install(assoc: Association, poll_pdu: Callable[[], bool] | None = None) -> None:
    """Make ``assoc`` (an acceptor, socket set, threads not started) event-driven.

    Parameters
    ----------
    assoc : Association
        The acceptor association.
    poll_pdu : callable, optional
        Reads the next PDU if it has begun to arrive, without waiting, and says whether it
        queued an event (:func:`dicomnode.net.framing.install` returns one). The DUL then
        calls it on each turn instead of pynetdicom's transport check, a zero-timeout
        ``select`` followed by the read: one system call per PDU instead of two, and one
        release of the GIL fewer. Without it the DUL uses pynetdicom's check.

    Raises
    ------
    RuntimeError
        The association or its DUL has already started.
    """
    dul = assoc.dul
    if assoc.is_alive() or dul.is_alive():
        raise RuntimeError("install() must run before the association starts")
    waker = SocketWaker()
    ready = threading.Event()  # the association reactor's wake-up

    def wake_dul() -> None:
        # the DUL thread's own puts need no wake-up: it looks at its queues before it waits
        if threading.current_thread() is not dul:
            waker.wake()

    dul.event_queue = NotifyingQueue.adopt(dul.event_queue, wake_dul)
    dul.to_provider_queue = NotifyingQueue.adopt(dul.to_provider_queue, wake_dul)
    dul.to_user_queue = NotifyingQueue.adopt(dul.to_user_queue, ready.set)
    assoc.dimse.msg_queue = NotifyingQueue.adopt(assoc.dimse.msg_queue, ready.set)

    kill_dul, kill = dul.kill_dul, assoc.kill

    def kill_dul_and_wake() -> None:
        kill_dul()
        waker.wake()

    def stop_dul() -> bool:
        if dul.state_machine.current_state != "Sta1":
            return False
        dul._kill_thread = True
        waker.wake()
        if threading.current_thread() is not dul:
            dul.join()
        return True

    def kill_and_wake() -> None:
        ready.set()
        kill()
        ready.set()

    context = contextvars.copy_context() if _config.PASS_CONTEXTVARS else None

    def run() -> None:
        try:
            waker.open()
            body: Callable[..., None] = _run_dul
        except OSError:  # out of descriptors: pynetdicom's own (polling) reactor still works
            log.warning("no descriptors for an event-driven DUL; polling")
            body = _run_polling_dul
        try:
            if context is None:
                body(dul, waker, poll_pdu)
            else:
                context.run(body, dul, waker, poll_pdu)
        finally:
            ready.set()  # the association sees the DUL gone at once
            waker.close()

    dul.kill_dul = kill_dul_and_wake  # type: ignore[method-assign]
    dul.stop_dul = stop_dul  # type: ignore[method-assign]
    dul.run = run  # type: ignore[method-assign]
    assoc.kill = kill_and_wake  # type: ignore[method-assign]
    assoc._run_reactor = lambda: _run_association(assoc, ready)  # type: ignore[method-assign]


def _run_dul(
    dul: DULServiceProvider, waker: SocketWaker, poll_pdu: Callable[[], bool] | None
) -> None:
    """``DULServiceProvider.run_reactor``, blocking where it slept.

    With ``poll_pdu`` the transport check outside Sta13 is one non-blocking read
    (:func:`install`); in Sta13 (waiting for the peer to close) pynetdicom's own check runs,
    which also closes the socket once nothing more arrives.
    """
    dul._idle_timer.start()
    dul.assoc._dul_ready.set()
    while not dul._kill_thread:
        if dul.artim_timer.expired:
            dul.event_queue.put("Evt18")
        try:
            # one primitive to send or one PDU to read per turn, as pynetdicom does
            if dul._process_recv_primitive():
                pass
            elif poll_pdu is not None and dul.state_machine.current_state != "Sta13":
                if poll_pdu():
                    dul._idle_timer.restart()
            elif dul._is_transport_event():
                dul._idle_timer.restart()
        except Exception:
            log.exception("DUL reactor failed; aborting the association")
            _abort_hard(dul)
            return
        try:
            event = dul.event_queue.get(block=False)
        except queue.Empty:
            if not dul.to_provider_queue.empty():  # put by this thread (no wake-up)
                continue
            sock = dul.socket.socket if dul.socket is not None else None
            waker.wait(sock, _timeout(_remaining(dul.artim_timer)))
            continue
        dul.state_machine.do_action(event)


def _run_polling_dul(
    dul: DULServiceProvider, waker: SocketWaker, poll_pdu: Callable[[], bool] | None
) -> None:
    """pynetdicom's own DUL reactor (``waker`` and ``poll_pdu`` unused: no descriptors)."""
    DULServiceProvider.run_reactor(dul)


def _abort_hard(dul: DULServiceProvider) -> None:
    """What pynetdicom's DUL does when its loop raises: A-ABORT, bypassing the FSM, and stop."""
    pdu = A_ABORT_RQ()
    pdu.source = 0x02
    pdu.reason_diagnostic = 0x00
    with contextlib.suppress(Exception):
        if dul.socket is not None:
            dul.socket.send(pdu.encode())
    assoc = dul.assoc
    assoc.is_aborted = True
    assoc.is_established = False
    assoc._kill = True
    dul._kill_thread = True


def _run_association(assoc: Association, ready: threading.Event) -> None:
    """``Association._run_reactor`` (acceptor), blocking where it slept.

    While it waits it counts as paused (``_is_paused``): it touches no queue until it has
    passed ``_reactor_checkpoint`` again, so a thread that clears the checkpoint to use the
    DIMSE or ACSE queues itself need not wait for a sleep to end.
    """
    dul = assoc.dul
    while not assoc._kill:
        assoc._is_paused = True
        assoc._reactor_checkpoint.wait()
        assoc._is_paused = False
        ready.clear()
        context_id, msg = assoc.dimse.get_msg(block=False)
        if msg:
            assoc._serve_request(msg, context_id)  # type: ignore[arg-type]
        if _association_ended(assoc):
            return
        if msg:
            continue
        assoc._is_paused = True
        ready.wait(_timeout(_remaining(dul._idle_timer)))


def _association_ended(assoc: Association) -> bool:
    """pynetdicom's end-of-turn checks: release, abort, DUL gone, network timeout.

    Returns ``True`` when the association ended (released, aborted or timed out) and the
    reactor must return, having done what pynetdicom does in each case.
    """
    dul = assoc.dul
    if assoc.is_established and assoc.acse.is_release_requested():
        assoc.acse.send_release(is_response=True)
        log.info("Association Released")
        assoc.is_released = True
        assoc.is_established = False
        evt.trigger(assoc, evt.EVT_RELEASED, {})
        assoc.kill()
        return True
    if assoc.acse.is_aborted():
        log.info(
            "Association Aborted" + (" (A-P-ABORT)" if assoc.acse.is_aborted("a-p-abort") else "")
        )
        dul.receive_pdu(wait=False)  # EVT_ACSE_RECV for its subscribers
        assoc.is_aborted = True
        assoc.is_established = False
        evt.trigger(assoc, evt.EVT_ABORTED, {})
        assoc.kill()
        return True
    if not dul.is_alive():
        assoc.kill()
        return True
    if dul.idle_timer_expired():
        log.error("Network timeout reached")
        if assoc.network_timeout_response == "A-RELEASE":
            assoc._is_paused = True
            assoc._reactor_checkpoint.wait()
            assoc.release()
            assoc._is_paused = False
        else:
            assoc.abort()
        assoc.kill()
        return True
    return False

"""pynetdicom's association server with the guards a node on a hospital network needs.

pynetdicom 3.0.4 (PITFALLS) reads a PDU of whatever length its header declares, counts idle
sockets as associations until the ACSE timeout, and runs the TLS handshake on the accepting
thread. This server:

* runs the TLS handshake, and the wait for a connection's first bytes, in that connection's own
  thread with ``handshake_timeout``: a silent peer costs one sleeping thread, never the accept
  loop, and is closed when the time is up; it is not an association until it sends a request;
* reads PDUs through :mod:`dicomnode.net.framing`: each header is checked against the
  association state and the length limits before its body is read; an unknown or unexpected
  PDU type, or a length over the limit (a P-DATA-TF longer than the maximum the node offered,
  any other PDU over :data:`~dicomnode.net.framing.MAX_CONTROL_PDU`), is answered with an
  A-ABORT and the connection is closed at once.

Security events (a failed TLS handshake, a framing violation) go to the ``on_alert`` callback.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import select
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from dicomnode.net import eventloop, framing, responses

__all__ = [
    "MAX_WAITING",
    "AlertCallback",
    "ContextList",
    "GuardedServer",
    "start_guarded_server",
]

log = logging.getLogger(__name__)

#: Connections that may wait for their first bytes (or TLS handshake) at once.
MAX_WAITING = 512

#: Called with (peer, detail) for each security event; must not raise.
AlertCallback = Callable[[str, str], None]


class ContextList(list[PresentationContext]):
    """The server's supported presentation contexts, copied cheaply for each association.

    pynetdicom gives every association ``deepcopy`` of the server's contexts, so that
    negotiation cannot change them: for the node's 173 contexts with 6296 transfer syntax UIDs
    that took 37 ms of CPU per association. A context's only mutable attribute is its list of
    transfer syntaxes (UIDs are immutable strings): a shallow copy of each context with its
    own list is an equal, independent copy, some 50 times faster.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> list[PresentationContext]:
        copies = []
        for context in self:
            duplicate = copy.copy(context)
            duplicate._transfer_syntax = list(context._transfer_syntax)
            copies.append(duplicate)
        return copies


class _GuardedRequestHandler(RequestHandler):
    """Per-connection handler: TLS handshake and first bytes with a deadline, then pynetdicom."""

    server: GuardedServer

    def handle(self) -> None:
        sock = self.request
        try:
            ready = self._handshake(sock) and self._first_bytes(sock)
        finally:
            self.server.done_waiting(sock)
        if ready:
            super().handle()
        else:
            self.server.shutdown_request(sock)

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        alert = self.server.on_alert

        def violation(detail: str) -> None:
            calling = str(assoc.requestor.ae_title or "").strip() or "?"
            alert(f"{calling}@{self.client_address[0]}", detail)

        limits = framing.FramingLimits(self.ae.maximum_pdu_size)
        eventloop.install(assoc, framing.install(assoc.dul, limits, violation))
        responses.install(assoc)
        return assoc

    def _handshake(self, sock: socket.socket) -> bool:
        if not isinstance(sock, ssl.SSLSocket):
            return True
        peer = f"?@{self.client_address[0]}"
        try:
            sock.settimeout(self.server.handshake_timeout)
            sock.do_handshake()
            sock.settimeout(None)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            log.info("peer closed during the TLS handshake", extra={"peer": peer})
            return False
        except ssl.SSLError as exc:
            self.server.on_alert(peer, f"TLS handshake refused: {exc.reason or exc}")
            return False
        except OSError:
            log.info("no TLS handshake in time; connection closed", extra={"peer": peer})
            return False
        return True

    def _first_bytes(self, sock: socket.socket) -> bool:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            ready, _, _ = select.select([sock], [], [], self.server.handshake_timeout)
        except (OSError, ValueError):
            return False
        if not ready:
            log.info(
                "no association request in time; connection closed",
                extra={"peer": f"?@{self.client_address[0]}"},
            )
            return False
        # Readable may mean closed (or shut down to make room): no association for that. The
        # plain socket's peek, so that TLS records count as bytes too.
        try:
            return bool(socket.socket.recv(sock, 1, socket.MSG_PEEK))
        except OSError:
            return False


class GuardedServer(ThreadedAssociationServer):
    """A :class:`ThreadedAssociationServer` with the guards of this module.

    Parameters
    ----------
    ae, address, ae_title, contexts, ssl_context, evt_handlers
        As for :class:`ThreadedAssociationServer`.
    handshake_timeout : float
        Seconds a new connection has to finish TLS and send its first bytes.
    on_alert : AlertCallback
        Told about security events.
    max_waiting : int
        Connections that may wait for their first bytes at once; beyond it the one waiting
        longest is closed. This bounds the threads a flood costs while a real sender, whose
        request follows its connection within milliseconds, still gets through.
    listening : socket.socket, optional
        A socket already bound (inherited from the parent of several SCP processes, which
        all accept on it) instead of one bound to ``address``; the first process to be ready
        starts listening on it. It is made non-blocking: when another process took the
        connection that woke this one, the accept fails at once instead of blocking the
        server's loop.
    """

    # socketserver listens with a backlog of 5: a burst of connections fills it and the
    # kernel drops the SYNs of everyone else, real senders included, for a second or more.
    request_queue_size = socket.SOMAXCONN
    # Handler threads may sleep up to handshake_timeout: don't join them on shutdown.
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        ae: AE,
        address: tuple[str, int],
        ae_title: str,
        contexts: list[PresentationContext],
        ssl_context: ssl.SSLContext | None = None,
        evt_handlers: list[Any] | None = None,
        *,
        handshake_timeout: float,
        on_alert: AlertCallback,
        max_waiting: int = MAX_WAITING,
        listening: socket.socket | None = None,
    ):
        self._listening = listening
        self.handshake_timeout = handshake_timeout
        self.on_alert = on_alert
        self.max_waiting = max_waiting
        self._waiting: OrderedDict[socket.socket, None] = OrderedDict()
        self._waiting_lock = threading.Lock()
        super().__init__(
            ae,
            address,
            ae_title,
            contexts,
            ssl_context,
            evt_handlers,
            request_handler=_GuardedRequestHandler,
        )
        self.contexts = ContextList(self.contexts)

    def server_bind(self) -> None:
        """Bind ``address``, or take the inherited listening socket."""
        if self._listening is None:
            super().server_bind()
            return
        assert self.socket is not None
        self.socket.close()
        self.socket = self._listening
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept a connection; a TLS one is wrapped without handshaking (its thread does)."""
        assert self.socket is not None
        client, address = self.socket.accept()
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        self._wait(client)
        return client, address

    def _wait(self, sock: socket.socket) -> None:
        """Count ``sock`` as waiting; close the longest-waiting one beyond ``max_waiting``."""
        with self._waiting_lock:
            self._waiting[sock] = None
            evicted = (
                self._waiting.popitem(last=False)[0]
                if len(self._waiting) > self.max_waiting
                else None
            )
        if evicted is not None:
            log.info("too many connections waiting; closed the oldest")
            # The plain socket's shutdown (an SSLSocket's would drop its TLS object under the
            # handshake running in the connection's thread): that thread wakes and closes it.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(evicted, socket.SHUT_RDWR)

    def done_waiting(self, sock: socket.socket) -> None:
        """``sock`` sent its first bytes, failed, or was closed."""
        with self._waiting_lock:
            self._waiting.pop(sock, None)


def start_guarded_server(
    ae: AE,
    address: tuple[str, int],
    *,
    evt_handlers: list[Any],
    ssl_context: ssl.SSLContext | None,
    handshake_timeout: float,
    on_alert: AlertCallback,
    listening: socket.socket | None = None,
) -> GuardedServer:
    """Bind (or take ``listening``) and serve in a daemon thread, as
    ``ae.start_server(block=False)`` does."""
    server = ae.make_server(
        address,
        evt_handlers=evt_handlers,
        ssl_context=ssl_context,
        server_class=GuardedServer,
        handshake_timeout=handshake_timeout,
        on_alert=on_alert,
        listening=listening,
    )
    assert isinstance(server, GuardedServer)
    thread = threading.Thread(target=server.serve_forever, name="AcceptorServer", daemon=True)
    thread.start()
    ae._servers.append(server)
    return server

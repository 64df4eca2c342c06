"""Syslog to an audit repository: RFC 5424 messages, octet-counted over TCP (RFC 6587) or TLS
(RFC 5425), or one per UDP datagram (RFC 5426).

The sender never blocks its caller: :meth:`SyslogSender.submit` appends to a bounded queue and
returns; a background thread renders, connects (with backoff while the collector is down) and
sends. When the queue is full the oldest message is dropped and counted. One log line says the
collector is unreachable, one that messages are being dropped, one that it is back.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from dicomnode.config.schema import ClientTlsConfig, SyslogConfig, SyslogTransport
from dicomnode.errors import ConfigError

__all__ = ["Severity", "SyslogMessage", "SyslogSender", "format_message", "frame", "tls_context"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Facility 10, security/authorization (authpriv), as IHE ATNA uses for audit messages.
FACILITY_AUTHPRIV = 10
_BOM = b"\xef\xbb\xbf"


class Severity(int, enum.Enum):
    """RFC 5424 severity."""

    ALERT = 1
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6


@dataclass(frozen=True)
class SyslogMessage:
    """What goes into one syslog message: its time, severity, MSGID and MSG (UTF-8)."""

    at: datetime
    severity: Severity
    msgid: str
    text: bytes


def format_message(
    message: SyslogMessage,
    *,
    hostname: str,
    app_name: str,
    procid: str,
    facility: int = FACILITY_AUTHPRIV,
) -> bytes:
    """The RFC 5424 message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM MSG``."""
    at = message.at if message.at.tzinfo else message.at.replace(tzinfo=UTC)
    stamp = at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    header = " ".join(
        (
            f"<{facility * 8 + int(message.severity)}>1",
            stamp,
            _field(hostname, 255),
            _field(app_name, 48),
            _field(procid, 128),
            _field(message.msgid, 32),
            "-",
        )
    )
    return header.encode("ascii") + b" " + _BOM + message.text


def frame(payload: bytes) -> bytes:
    """Octet-counting framing (RFC 6587 3.4.1, RFC 5425 4.3): ``LEN SP MSG``."""
    return str(len(payload)).encode("ascii") + b" " + payload


def _field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit``, ``-`` if empty."""
    text = "".join(c for c in value if "!" <= c <= "~")[:limit]
    return text or "-"


def tls_context(cfg: SyslogConfig) -> ssl.SSLContext:
    """The client context towards the collector: TLS 1.2+, its certificate checked against
    ``ca`` and its host name, ours sent when configured (RFC 5425).

    Raises
    ------
    ConfigError
        One line naming the file that cannot be loaded (key ``audit.syslog.*``).
    """
    from dicomnode.net.tls import client_context

    assert cfg.ca is not None
    try:
        return client_context(ClientTlsConfig(ca=cfg.ca, cert=cfg.cert, key=cfg.key))
    except ConfigError as exc:
        raise ConfigError(exc.message, key=f"audit.syslog.{exc.key or 'ca'}") from None


class SyslogSender(Generic[T]):
    """Send items to a syslog collector from a background thread, never blocking the caller.

    Parameters
    ----------
    cfg : SyslogConfig
        Collector, transport, TLS files, APP-NAME and the queue bound.
    render : callable
        Turns a submitted item into a :class:`SyslogMessage` (None: nothing to send); runs on
        the sender's thread. An exception drops the item with one log line.
    hostname : str, optional
        The HOSTNAME field (default: this machine's host name).
    context : ssl.SSLContext, optional
        TLS context (default: :func:`tls_context` for transport ``tls``).
    """

    def __init__(
        self,
        cfg: SyslogConfig,
        render: Callable[[T], SyslogMessage | None],
        *,
        hostname: str | None = None,
        context: ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
        max_backoff: float = 30.0,
    ):
        self.cfg = cfg
        self.render = render
        self.hostname = hostname or socket.gethostname()
        self.procid = str(os.getpid())
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self._context = context
        if cfg.transport is SyslogTransport.TLS and context is None:
            self._context = tls_context(cfg)
        self._queue: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._stopping = False
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None
        self._down = False
        self._dropping = False
        self.sent = 0
        self.dropped = 0

    # -- caller side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sending thread."""
        self._thread = threading.Thread(target=self._run, name="dicomnode-syslog", daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        """Queue ``item``; when the queue is full, drop the oldest. Never blocks, never raises."""
        with self._cond:
            if len(self._queue) >= self.cfg.queue:
                self._queue.popleft()
                self.dropped += 1
                if not self._dropping:
                    self._dropping = True
                    log.warning(
                        "syslog queue full: dropping the oldest audit messages",
                        extra={"queue": self.cfg.queue, "collector": self._where},
                    )
            self._queue.append(item)
            self._cond.notify()

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued for up to ``timeout`` seconds, then stop and disconnect."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            sock = self._sock
            if self._thread.is_alive() and sock is not None:
                with contextlib.suppress(OSError):  # unblocks a send to a collector that hangs
                    sock.shutdown(socket.SHUT_RDWR)
            self._thread.join(self.connect_timeout + 1)
        self._disconnect()

    @property
    def pending(self) -> int:
        """Items queued and not yet sent."""
        with self._cond:
            return len(self._queue)

    @property
    def _where(self) -> str:
        return f"{self.cfg.transport.value}://{self.cfg.host}:{self.cfg.effective_port}"

    # -- sender thread -----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        data: bytes | None = None
        while True:
            if data is None:
                item = self._next()
                if item is None:
                    break
                data = self._render(item[0])
                if data is None:
                    continue
            if self._stopping and time.monotonic() >= self._deadline:
                break
            try:
                self._send(data)
            except OSError as exc:
                self._disconnect()
                self._went_down(exc)
                self._pause(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            data = None
            backoff = 0.5
            self.sent += 1
            self._came_back()
        self._disconnect()

    def _next(self) -> tuple[T] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue or self._over():
                return None
            return (self._queue.popleft(),)

    def _over(self) -> bool:
        return self._stopping and (not self._queue or time.monotonic() >= self._deadline)

    def _render(self, item: T) -> bytes | None:
        try:
            message = self.render(item)
            if message is None:
                return None
            payload = format_message(
                message, hostname=self.hostname, app_name=self.cfg.app_name, procid=self.procid
            )
        except Exception:  # one bad item must not stop the audit stream
            log.exception("cannot render an audit message; dropped")
            return None
        if self.cfg.transport is SyslogTransport.UDP:
            return payload
        return frame(payload)

    def _pause(self, seconds: float) -> None:
        with self._cond:
            if self._stopping:
                seconds = min(seconds, max(0.0, self._deadline - time.monotonic()))
            self._cond.wait(seconds)

    def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is not None and self.cfg.transport is not SyslogTransport.UDP and _closed(sock):
            self._disconnect()
            sock = None
        if sock is None:
            sock = self._sock = self._connect()
        sock.sendall(data)

    def _connect(self) -> socket.socket:
        address = (self.cfg.host, self.cfg.effective_port)
        if self.cfg.transport is SyslogTransport.UDP:
            family = socket.getaddrinfo(*address, type=socket.SOCK_DGRAM)[0][0]
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.connect(address)
            return udp
        sock = socket.create_connection(address, timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._context is not None:
            try:
                sock = self._context.wrap_socket(sock, server_hostname=self.cfg.host)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(max(self.connect_timeout, 10.0))
        return sock

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _went_down(self, exc: OSError) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "syslog collector unreachable; audit messages are queued",
                extra={"collector": self._where, "reason": _reason(exc), "queue": self.cfg.queue},
            )

    def _came_back(self) -> None:
        if self._down or self._dropping:
            with self._cond:
                self._down = self._dropping = False
            log.info(
                "syslog collector reachable",
                extra={"collector": self._where, "dropped": self.dropped},
            )


def _closed(sock: socket.socket) -> bool:
    """Whether the collector closed the connection (it never sends: readable means closed)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        if not isinstance(sock, ssl.SSLSocket):
            return sock.recv(1, socket.MSG_PEEK) == b""
        # TLS 1.3 session tickets make the socket readable too: read them through ssl
        timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            return sock.recv(1) == b""
        except ssl.SSLWantReadError:
            return False
        finally:
            sock.settimeout(timeout)
    except (OSError, ValueError):
        return True


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return exc.strerror or str(exc) or type(exc).__name__

"""The HTTP server: the ASGI app of :mod:`dicomnode.api.webapp` on uvicorn, in a thread.

One event loop in one thread serves every connection (no thread per client); the route
handlers that read the database run in anyio's bounded thread pool. Slow clients are cut off
(:mod:`dicomnode.api.protocol`: ``http.timeout_header``, ``http.timeout_body``), idle
keep-alive connections close after ``http.timeout_keep_alive`` and beyond
``http.limit_concurrency`` open connections new requests get 503. The socket is bound when
the server is made, so a taken port fails at start-up with the port in the message. With
``http.tls`` it speaks HTTPS only (TLS 1.2 or later).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from dicomnode.api.metrics import NodeMetrics
from dicomnode.api.protocol import timed_protocol
from dicomnode.api.webapp import ApiContext, Checks, create_app
from dicomnode.config.schema import HttpConfig, HttpTlsConfig
from dicomnode.errors import DicomNodeError
from dicomnode.net.receive import Receiver
from dicomnode.store.db import Database

__all__ = ["ApiServer", "Checks", "HttpTlsError"]

log = logging.getLogger(__name__)

#: Seconds :meth:`ApiServer.start` waits for the server to serve, and :meth:`ApiServer.stop`
#: lets open requests finish.
_START_SECONDS = 15.0
_STOP_SECONDS = 5


class HttpTlsError(DicomNodeError):
    """The certificate or key of ``http.tls`` cannot be loaded; the message says which."""


def _tls_context(tls: HttpTlsConfig) -> Callable[[uvicorn.Config, Any], ssl.SSLContext]:
    """uvicorn's ``ssl_context_factory``: TLS 1.2 or later with the configured certificate
    (loaded now, so that a bad file fails at start-up).

    Raises
    ------
    HttpTlsError
        A file is missing, unreadable or not a matching certificate and key.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except ssl.SSLError as exc:
        raise HttpTlsError(f"http.tls: {tls.cert} / {tls.key}: {exc.reason}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise HttpTlsError(f"http.tls: {tls.cert} / {tls.key}: {reason}") from None
    return lambda _config, _default: context


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 where the name has both, else IPv6);
    OSError when taken."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # IPv4 first: "localhost" may resolve to ::1 first, and clients try 127.0.0.1
    family, kind, proto, _, address = min(found, key=lambda f: f[0] != socket.AF_INET)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


class ApiServer:
    """Serve the API and web app on ``config.host:config.port`` in a daemon thread.

    Parameters
    ----------
    config : HttpConfig
        Address, token, allowed hosts, timeouts and limits.
    db : Database
        The state database.
    metrics : NodeMetrics
        The registry to expose.
    checks : Mapping
        Readiness checks by name.
    receiver : Receiver, optional
        Where STOW-RS stores (the SCP's); None: STOW-RS answers 503.

    Raises
    ------
    OSError
        The port cannot be bound.
    HttpTlsError
        The certificate or key of ``http.tls`` cannot be loaded.
    """

    def __init__(
        self,
        config: HttpConfig,
        db: Database,
        metrics: NodeMetrics,
        checks: Checks,
        receiver: Receiver | None = None,
    ):
        self.config = config
        self.context = ApiContext(
            config=config, db=db, metrics=metrics, checks=checks, receiver=receiver
        )
        self.app = create_app(self.context)
        tls = _tls_context(config.tls) if config.tls else None
        self._socket = _listen(config.host, config.port)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                http=timed_protocol(config.timeout_header, config.timeout_body),
                lifespan="off",
                log_config=None,
                access_log=False,  # paths and queries may hold what an operator searched
                server_header=False,
                proxy_headers=False,
                timeout_keep_alive=config.timeout_keep_alive,
                limit_concurrency=config.limit_concurrency,
                h11_max_incomplete_event_size=config.max_header_bytes,
                timeout_graceful_shutdown=_STOP_SECONDS,
                ssl_context_factory=tls,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="dicomnode-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        """Serve in the thread; returns once the server accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + _START_SECONDS
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
        if not self._server.started:
            raise RuntimeError("the HTTP server stopped at start-up")
        log.info("http api listening", extra={"host": self.config.host, "port": self.port})

    def stop(self) -> None:
        """Stop accepting, let open requests finish (a few seconds at most), close."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(_STOP_SECONDS + 5)
        self._socket.close()

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """All checks, and whether every one passed."""
        return self.context.readiness()

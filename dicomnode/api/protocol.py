"""uvicorn's h11 protocol with the two timeouts it lacks: request head and request body.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits for ever for a
client that opens a connection and sends its request line a byte at a time (slowloris), or
that stops half way through a body. Each such client costs a socket, not a thread (asyncio),
yet enough of them fill ``limit_concurrency`` and every new request gets 503. Here:

- the request line and headers must be complete within ``timeout_header`` seconds of the
  connection (or of the end of the previous response on a keep-alive connection), else the
  connection is closed;
- a request body may stall at most ``timeout_body`` seconds between two reads, else the
  connection is closed (the app sees a client disconnect).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["TimedH11Protocol", "timed_protocol"]


class TimedH11Protocol(H11Protocol):
    """:class:`H11Protocol` that closes slow clients (see the module docstring)."""

    timeout_header: float = 10.0
    timeout_body: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused and self.conn.their_state is h11.SEND_BODY:
            self._arm(self.timeout_body)  # the app is slow to read, not the client to send
            return
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.timeout_header)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.IDLE:
            # still reading a request head: the deadline set when the wait began holds
            if self._deadline is None and not self.transport.is_closing():
                self._arm(self.timeout_header)
        elif state is h11.SEND_BODY:
            self._arm(self.timeout_body)
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()  # the keep-alive timer runs until the next request's first bytes


def timed_protocol(timeout_header: float, timeout_body: float) -> type[TimedH11Protocol]:
    """A :class:`TimedH11Protocol` subclass with these timeouts, for ``uvicorn.Config(http=)``."""
    return type(
        "TimedH11",
        (TimedH11Protocol,),
        {"timeout_header": timeout_header, "timeout_body": timeout_body},
    )

"""A real HTTP server on loopback that records what webhooks receive and answers as told."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    """One request as the server read it: path, headers (lower-case names) and body bytes."""

    path: str
    headers: dict[str, str]
    body: bytes


class HookServer(ThreadingHTTPServer):
    """Records every POST; answers the statuses of ``script`` in turn, then ``default``."""

    daemon_threads = True

    def __init__(self, script: list[int] | None = None, default: int = 200):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []
        self.script = list(script or [])
        self.default = default
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def answer(self, request: Received) -> int:
        with self.lock:
            self.received.append(request)
            return self.script.pop(0) if self.script else self.default

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """The first ``count`` requests, once they arrived (AssertionError at the deadline)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} of {count} requests arrived")


class _Handler(BaseHTTPRequestHandler):
    server: HookServer

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {key.lower(): value for key, value in self.headers.items()}
        status = self.server.answer(Received(self.path, headers, body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@contextmanager
def hook_server(script: list[int] | None = None, default: int = 200) -> Iterator[HookServer]:
    """A :class:`HookServer` serving in a thread for the ``with`` block."""
    server = HookServer(script, default)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

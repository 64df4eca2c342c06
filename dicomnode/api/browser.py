"""Browser safety for every response: allowed Host headers, same-origin changes, headers.

An ASGI middleware (no body buffering, so streamed uploads stay streamed) that

- answers 400 when the ``Host`` header is not one of ``http.allowed_hosts`` (DNS rebinding:
  a page on ``evil.example`` whose name now resolves to 127.0.0.1 sends ``Host: evil.example``);
- answers 403 to a state-changing request (anything but GET, HEAD, OPTIONS) whose ``Origin``
  is not this server's own, or that a browser marks ``Sec-Fetch-Site: cross-site``/``same-site``
  (a cross-site form post);
- adds the security headers to every response: a CSP without inline script or style,
  ``frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  same-origin`` (never ``no-referrer``: with it a browser sends ``Origin: null`` on the app's
  own form posts, which the origin check must refuse), ``X-Frame-Options: DENY`` and
  ``Cache-Control: no-store`` unless set, and over HTTPS ``Strict-Transport-Security``.

Tools without a browser (curl, the CLI, Prometheus) send no ``Origin``: they pass the origin
check and meet the token check of :mod:`dicomnode.api.auth`.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SAFE_METHODS", "SECURITY_HEADERS", "BrowserSafety", "HostPolicy", "default_hosts"]

#: Methods that change nothing; every other method is state-changing.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def _split(host: str) -> tuple[str, str | None]:
    """``name:port`` or ``[v6]:port`` → (lower-case name without brackets, port or None)."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        return name, port or None
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, port or None
    return host, None  # a bare name, or a bare IPv6 address


def default_hosts(bind: str) -> list[str]:
    """The default ``allowed_hosts``: the bind address and the loopback names; on a wildcard
    bind (0.0.0.0, ::) this machine's host name and fully qualified name too."""
    hosts = [bind, "localhost", "127.0.0.1", "::1"]
    try:
        wildcard = ipaddress.ip_address(bind).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        hosts = [socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1", "::1"]
    return list(dict.fromkeys(h.lower() for h in hosts if h))


class HostPolicy:
    """Which ``Host`` header values are served.

    Parameters
    ----------
    allowed : iterable of str
        ``name`` (any port) or ``name:port`` (that port only); IPv6 with or without brackets;
        ``*`` allows any host.
    """

    def __init__(self, allowed: Iterable[str]):
        self.any = False
        self._names: set[str] = set()
        self._pairs: set[tuple[str, str]] = set()
        for entry in allowed:
            if entry.strip() == "*":
                self.any = True
                continue
            try:  # a bare IPv6 address has colons of its own
                name, port = str(ipaddress.IPv6Address(entry.strip("[] "))), None
            except ValueError:
                name, port = _split(entry)
            if port is None:
                self._names.add(name)
            else:
                self._pairs.add((name, port))

    def allows(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header is served."""
        if self.any:
            return True
        if not host:
            return False
        name, port = _split(host)
        if name in self._names:
            return True
        return port is not None and (name, port) in self._pairs


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cross_origin(scope: Scope) -> str | None:
    """Why a state-changing request comes from another site, or None when it does not."""
    fetch_site = _header(scope, b"sec-fetch-site")
    if fetch_site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {fetch_site}"
    origin = _header(scope, b"origin")
    if origin is None:
        return None
    host = (_header(scope, b"host") or "").lower()
    parts = urlsplit(origin.lower())
    if origin == "null" or not parts.netloc or parts.netloc != host:
        return "foreign Origin"
    return None


async def _refuse(send: Send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BrowserSafety:
    """The middleware (see the module docstring).

    Parameters
    ----------
    app : ASGIApp
        The application it guards.
    hosts : HostPolicy
        The ``Host`` values served.
    """

    def __init__(self, app: ASGIApp, hosts: HostPolicy):
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.hosts.allows(_header(scope, b"host")):
            await _refuse(send, 400, "Host header not allowed (http.allowed_hosts)")
            return
        if scope["method"] not in SAFE_METHODS:
            why = cross_origin(scope)
            if why is not None:
                await _refuse(send, 403, f"cross-site request refused ({why})")
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {key.lower() for key, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in names)
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                if scope.get("scheme") == "https":
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

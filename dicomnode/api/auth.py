"""Who may read and who may change: the bearer token (API) or a web session (UI) + CSRF token.

Two ways in:

- **Bearer token** (``Authorization: Bearer <http.token>``), for tools. Browsers never send it
  on their own, so a request carrying it needs no CSRF token.
- **Session cookie** ``dicomnode_session`` (``HttpOnly``, ``SameSite=Strict``, ``Secure`` over
  TLS), set by ``POST /api/login`` (the token, when one is configured) and held in memory
  for ``http.session_hours``. Every state-changing request on a session must carry the
  session's CSRF token (synchronizer token) in the ``X-CSRF-Token`` header or a
  ``csrf_token`` form field; :class:`dicomnode.api.browser.BrowserSafety` has already
  refused a foreign ``Origin``.

Without ``http.token`` (loopback only) reading is open, and so is changing for a client that
is not a browser (no ``Origin``, no ``Sec-Fetch-*``, no cookie: curl, the CLI); a browser
must use a session and its CSRF token (``ensure_session`` gives a page one without login).

Tokens and CSRF tokens compare in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request, Response

from dicomnode.config.schema import HttpConfig

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOCAL_OPERATOR",
    "SESSION_COOKIE",
    "Access",
    "Operator",
    "Session",
    "SessionStore",
    "change_access",
    "ensure_session",
    "form_fields",
    "read_access",
    "token_matches",
]

SESSION_COOKIE = "dicomnode_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: Who acts when no token is configured (loopback).
LOCAL_OPERATOR = "local operator"
#: The largest form body read (login, actions): a few fields.
MAX_FORM_BYTES = 16 * 1024


class Access(str, Enum):
    """How a request was let in."""

    TOKEN = "token"  # noqa: S105 - the name of a way in, not a secret
    SESSION = "session"
    OPEN = "open"  # no token configured (loopback), a tool without a browser


@dataclass
class Session:
    """A web session: its id (the cookie), its CSRF token, the operator and expiry."""

    id: str
    csrf: str
    identity: str
    expires: float


@dataclass(frozen=True)
class Operator:
    """The one acting: ``identity`` goes into audit rows (never into logs with identifiers)."""

    identity: str
    access: Access
    session: Session | None = None


class SessionStore:
    """Web sessions in memory (lost on restart: operators log in again).

    Parameters
    ----------
    lifetime : float
        Seconds a session lives from its login.
    """

    def __init__(self, lifetime: float):
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(self, identity: str) -> Session:
        """A new session for ``identity``."""
        now = time.monotonic()
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            identity=identity,
            expires=now + self.lifetime,
        )
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.expires <= now]:
                del self._sessions[key]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires <= time.monotonic():
                del self._sessions[session_id]
                return None
            return session

    def drop(self, session_id: str) -> None:
        """End a session (logout)."""
        with self._lock:
            self._sessions.pop(session_id, None)


def token_matches(config: HttpConfig, given: str | None) -> bool:
    """Whether ``given`` is the configured token (constant time; False when none is set)."""
    if config.token is None or given is None:
        return False
    return hmac.compare_digest(given.encode(), config.token.encode())


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _config(request: Request) -> HttpConfig:
    config: HttpConfig = request.app.state.http
    return config


def _sessions(request: Request) -> SessionStore:
    sessions: SessionStore = request.app.state.sessions
    return sessions


def _session(request: Request) -> Session | None:
    return _sessions(request).get(request.cookies.get(SESSION_COOKIE))


def _unauthorised() -> HTTPException:
    return HTTPException(
        401,
        "missing or wrong bearer token",
        headers={"WWW-Authenticate": 'Bearer realm="dicomnode"'},
    )


def _is_browser(request: Request) -> bool:
    headers = request.headers
    return any(h in headers for h in ("origin", "sec-fetch-site", "sec-fetch-mode", "cookie"))


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (at most 16 KiB), else {}.

    Read once per request and kept on ``request.state`` (the CSRF check and the handler
    both read it).
    """
    cached: dict[str, str] | None = getattr(request.state, "form_fields", None)
    if cached is not None:
        return cached
    fields: dict[str, str] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise HTTPException(413, f"form body over {MAX_FORM_BYTES} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise HTTPException(413, f"form body over {MAX_FORM_BYTES} bytes")
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    request.state.form_fields = fields
    return fields


def read_access(request: Request) -> Operator:
    """FastAPI dependency for reading: the token, a session, or open without a token.

    Raises
    ------
    HTTPException
        401 when a token is configured and the request has neither it nor a session.
    """
    config = _config(request)
    session = _session(request)
    if config.token is None:
        if session is not None:
            return Operator(session.identity, Access.SESSION, session)
        return Operator(LOCAL_OPERATOR, Access.OPEN)
    if token_matches(config, _bearer(request)):
        return Operator("token", Access.TOKEN)
    if session is not None:
        return Operator(session.identity, Access.SESSION, session)
    raise _unauthorised()


async def change_access(request: Request) -> Operator:
    """FastAPI dependency for state-changing requests: the token, or a session with its CSRF
    token, or (no token configured) a tool that is not a browser.

    Raises
    ------
    HTTPException
        401 without token or session (token configured); 403 for a session without its CSRF
        token, or a browser without a session when no token is configured.
    """
    config = _config(request)
    if config.token is not None and token_matches(config, _bearer(request)):
        return Operator("token", Access.TOKEN)
    session = _session(request)
    if session is not None:
        given = request.headers.get(CSRF_HEADER) or (await form_fields(request)).get(CSRF_FIELD)
        if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token")
        return Operator(session.identity, Access.SESSION, session)
    if config.token is not None:
        raise _unauthorised()
    if _is_browser(request):
        raise HTTPException(403, "a browser changes things through a session and its CSRF token")
    return Operator(LOCAL_OPERATOR, Access.OPEN)


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    """Set the session cookie on ``response`` (``Secure`` when the request came over TLS)."""
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=int(_sessions(request).lifetime),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def ensure_session(request: Request, response: Response) -> Session | None:
    """The request's session; without a token configured, a new one (cookie set on
    ``response``) so that a page can carry a CSRF token in its forms. None when a token is
    configured and the request has no session (the page should send the operator to login).
    """
    session = _session(request)
    if session is not None or _config(request).token is not None:
        return session
    session = _sessions(request).create(LOCAL_OPERATOR)
    set_session_cookie(request, response, session)
    return session

"""The ASGI app (FastAPI): routes, typed answers, errors, login; see :mod:`dicomnode.api.server`.

Routes
------
``GET /healthz``                    the process answers (never needs the token)
``GET /readyz``                     database, store, scheduler and workers; 503 when not ready
``GET /metrics``                    Prometheus text format
``GET /api/studies``                series with their study, state and instance count
``GET /api/jobs``                   jobs with their delivery counts
``GET /api/deliveries``             deliveries
``POST /api/jobs/{id}/retry``       queue a job (and its dead deliveries) again: 404 for an
                                    unknown job, 422 for an id no job can have, 409 when it
                                    cannot be queued (running, inputs changed)
``POST /api/deliveries/send-now[?destination=NAME]``
                                    pending deliveries skip their backoff (due now)
``POST /api/login``, ``POST /api/logout``, ``GET /api/session``
                                    the web session (cookie) and its CSRF token
``POST /dicomweb/studies[/{study}]``
                                    DICOMweb STOW-RS (:mod:`dicomnode.api.stow`)
``GET /api/openapi.json``           the OpenAPI schema
``GET /``                           a read-only HTML status page

Every list takes ``state``, ``modality``, ``since``, ``q``, ``limit``, ``offset`` and
``order=newest|oldest`` and says its total before paging in ``X-Total-Count``. Answers carry
UIDs, states and counts, never patient identifiers. Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from dicomnode.api import stow
from dicomnode.api.auth import (
    LOCAL_OPERATOR,
    SESSION_COOKIE,
    Access,
    Operator,
    SessionStore,
    change_access,
    form_fields,
    read_access,
    set_session_cookie,
    token_matches,
)
from dicomnode.api.browser import BrowserSafety, HostPolicy, default_hosts
from dicomnode.api.listing import ListQuery, ListSpec, Order, list_query, page
from dicomnode.api.metrics import NodeMetrics
from dicomnode.api.models import (
    DeliveryRow,
    ErrorBody,
    Health,
    JobRow,
    Message,
    Readiness,
    SendNowResult,
    SeriesRow,
    SessionInfo,
)
from dicomnode.config.schema import HttpConfig
from dicomnode.export.expedite import send_now
from dicomnode.export.report import delivery_rows
from dicomnode.jobs.errors import InvalidJobId, JobError, NoSuchJob
from dicomnode.jobs.models import DeliveryState, JobState
from dicomnode.jobs.report import job_rows
from dicomnode.jobs.retry import retry
from dicomnode.net.receive import Receiver
from dicomnode.store.audit import AuditKind, record
from dicomnode.store.db import Database
from dicomnode.store.models import CompletionState
from dicomnode.store.report import series_rows

__all__ = ["ApiContext", "Checks", "create_app"]

log = logging.getLogger(__name__)

#: Readiness checks: name -> callable returning (ok, detail).
Checks = Mapping[str, Callable[[], tuple[bool, str]]]

#: The largest login body (JSON or form).
_MAX_LOGIN_BYTES = 4096
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)
}

_STUDIES = ListSpec(
    "last_received_at",
    "last_received_at",
    ("study_uid", "series_uid", "description", "routing"),
    Order.OLDEST,
)
_JOBS = ListSpec("created_at", "id", ("route", "pipeline", "subject", "error"), Order.OLDEST)
_DELIVERIES = ListSpec(
    "updated_at", "id", ("destination", "sop_instance_uid", "series_uid", "error"), Order.NEWEST
)

Reader = Annotated[Operator, Depends(read_access)]
Changer = Annotated[Operator, Depends(change_access)]
Listing = Annotated[ListQuery, Depends(list_query)]


@dataclass
class ApiContext:
    """What the routes read: config, database, metrics, readiness checks, sessions; the
    receiver that STOW-RS stores through (None: this process does not receive)."""

    config: HttpConfig
    db: Database
    metrics: NodeMetrics
    checks: Checks
    receiver: Receiver | None = None

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """All checks, and whether every one passed."""
        results: dict[str, str] = {}
        ready = True
        for name, check in self.checks.items():
            try:
                ok, detail = check()
            except Exception as exc:  # a failing check is "not ready", never a crash
                ok, detail = False, type(exc).__name__
            ready &= ok
            results[name] = ("ok: " if ok else "FAIL: ") + detail
        return ready, results


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.node
    return context


Context = Annotated[ApiContext, Depends(_context)]


def _listed(response: Response, rows: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    response.headers["X-Total-Count"] = str(total)
    return rows


def _modality_index(db: Database) -> dict[str, set[str]]:
    """Series and study UIDs → the modalities of their series."""
    index: dict[str, set[str]] = {}
    for row in series_rows(db):
        modality = {(row["modality"] or "").upper()}
        index.setdefault(row["series_uid"], set()).update(modality)
        index.setdefault(row["study_uid"], set()).update(modality)
    return index


def _actor(operator: Operator) -> str:
    """Who acted, for audit rows: ``HTTP API`` (token or open) or ``web: <operator>``."""
    return f"web: {operator.identity}" if operator.access is Access.SESSION else "HTTP API"


def _client(request: Request) -> str:
    return f"http@{request.client.host if request.client else '?'}"


def _audit(db: Database, kind: AuditKind, request: Request, detail: str) -> None:
    with db.session() as session:
        record(session, kind, peer=_client(request), detail=detail)


def _is_form(request: Request) -> bool:
    """A browser's form post (answered by a redirect; other clients get JSON)."""
    content_type = request.headers.get("content-type", "")
    return content_type.startswith("application/x-www-form-urlencoded")


def _local_path(target: str | None) -> str:
    """``target`` when it is a path on this server, else ``/`` (no open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


async def _login_fields(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_LOGIN_BYTES:
                raise HTTPException(413, "login body too large")
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise HTTPException(400, "login body is not JSON") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "login body must be a JSON object")
        return {k: str(v) for k, v in data.items() if isinstance(v, str)}
    return await form_fields(request)


def _identity(fields: dict[str, str]) -> str:
    given = "".join(c for c in fields.get("operator", "") if c.isprintable()).strip()[:64]
    return given or "operator"


def _register_routes(app: FastAPI) -> None:  # noqa: C901 - one function per route
    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, tags=["health"], responses=_ERRORS)
    def readyz(context: Context, _: Reader, response: Response) -> dict[str, Any]:
        ready, checks = context.readiness()
        response.status_code = 200 if ready else 503
        return {"ready": ready, "checks": checks}

    @app.get("/metrics", tags=["health"], response_class=Response, responses=_ERRORS)
    def metrics(context: Context, _: Reader) -> Response:
        return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/studies", response_model=list[SeriesRow], tags=["lists"], responses=_ERRORS)
    def studies(
        context: Context,
        _: Reader,
        query: Listing,
        response: Response,
        state: Annotated[CompletionState | None, Query(description="series state")] = None,
    ) -> list[dict[str, Any]]:
        rows = series_rows(context.db)
        if state is not None:
            rows = [r for r in rows if r["series_state"] == state.value]
        selected, total = page(rows, query, _STUDIES, lambda r: {(r["modality"] or "").upper()})
        return _listed(response, selected, total)

    @app.get("/api/jobs", response_model=list[JobRow], tags=["lists"], responses=_ERRORS)
    def jobs(
        context: Context,
        _: Reader,
        query: Listing,
        response: Response,
        state: Annotated[JobState | None, Query(description="job state")] = None,
    ) -> list[dict[str, Any]]:
        rows = job_rows(context.db, state=state)
        index = _modality_index(context.db) if query.modality else {}
        selected, total = page(rows, query, _JOBS, lambda r: index.get(r["subject"], set()))
        return _listed(response, selected, total)

    @app.get("/api/deliveries", response_model=list[DeliveryRow], tags=["lists"], responses=_ERRORS)
    def deliveries(
        context: Context,
        _: Reader,
        query: Listing,
        response: Response,
        state: Annotated[DeliveryState | None, Query(description="delivery state")] = None,
    ) -> list[dict[str, Any]]:
        rows = delivery_rows(context.db, state=state, limit=1_000_000)
        subjects: dict[int, str] = {}
        index: dict[str, set[str]] = {}
        if query.modality:
            subjects = {r["id"]: r["subject"] for r in job_rows(context.db)}
            index = _modality_index(context.db)
        selected, total = page(
            rows, query, _DELIVERIES, lambda r: index.get(subjects.get(r["job_id"], ""), set())
        )
        return _listed(response, selected, total)

    @app.post(
        "/api/jobs/{job_id}/retry", response_model=Message, tags=["actions"], responses=_ERRORS
    )
    def retry_job(context: Context, operator: Changer, job_id: str) -> dict[str, str]:
        message = retry(context.db, job_id, by=_actor(operator))
        log.info("job retried over http", extra={"job": job_id, "by": operator.access.value})
        return {"message": message}

    @app.post(
        "/api/deliveries/send-now",
        response_model=SendNowResult,
        tags=["actions"],
        responses=_ERRORS,
    )
    def deliveries_send_now(
        context: Context,
        operator: Changer,
        destination: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        count = send_now(context.db, destination=destination, by=_actor(operator))
        where = f" to {destination}" if destination else ""
        return {"message": f"{count} pending deliveries{where} due now", "deliveries": count}

    @app.get("/api/session", response_model=SessionInfo, tags=["session"], responses=_ERRORS)
    def session_info(operator: Reader) -> dict[str, Any]:
        return {
            "identity": operator.identity,
            "access": operator.access.value,
            "csrf_token": operator.session.csrf if operator.session else None,
        }

    @app.post("/api/login", response_model=SessionInfo, tags=["session"], responses=_ERRORS)
    async def login(request: Request, context: Context) -> Response:
        fields = await _login_fields(request)
        config = context.config
        if config.token is not None and not token_matches(config, fields.get("token")):
            _audit(context.db, AuditKind.SECURITY_ALERT, request, "web login refused: wrong token")
            if _is_form(request):
                return RedirectResponse("/login?failed=1", status_code=303)
            raise HTTPException(401, "wrong token")
        identity = _identity(fields) if config.token is not None else LOCAL_OPERATOR
        session = request.app.state.sessions.create(identity)
        _audit(context.db, AuditKind.WEB_LOGIN, request, f"web session for {identity}")
        response: Response
        if _is_form(request):
            response = RedirectResponse(_local_path(fields.get("next")), status_code=303)
        else:
            info = SessionInfo(identity=identity, access="session", csrf_token=session.csrf)
            response = JSONResponse(info.model_dump())
        set_session_cookie(request, response, session)
        return response

    @app.post("/api/logout", response_model=Message, tags=["session"], responses=_ERRORS)
    def logout(request: Request, context: Context, operator: Changer) -> Response:
        response: Response = JSONResponse({"message": "logged out"})
        if operator.session is not None:
            request.app.state.sessions.drop(operator.session.id)
            _audit(context.db, AuditKind.WEB_LOGOUT, request, f"web session of {operator.identity}")
            if _is_form(request):
                response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def status_page(context: Context, _: Reader) -> str:
        return _page(context)


def _error(status: int, error: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status, headers=dict(headers or {}))


def _register_errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return _error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(InvalidJobId)
    async def bad_id(_: Request, exc: InvalidJobId) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(NoSuchJob)
    async def no_job(_: Request, exc: NoSuchJob) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(JobError)
    async def conflict(_: Request, exc: JobError) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(ClientDisconnect)
    async def gone(_: Request, exc: ClientDisconnect) -> Response:
        # the client went away mid-body (or was cut off by http.timeout_body): nobody to answer
        log.info("http client disconnected before its request was read")
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        log.error("http handler failed", extra={"error": type(exc).__name__})
        return _error(500, "internal error")


def create_app(context: ApiContext) -> FastAPI:
    """The node's ASGI app over ``context``: API routes, the status page, browser safety.

    Parameters
    ----------
    context : ApiContext
        Config, database, metrics and readiness checks.
    """
    config = context.config
    app = FastAPI(
        title="dicomnode",
        summary="A DICOM analysis node (research use only)",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.node = context
    app.state.http = config
    app.state.sessions = SessionStore(config.session_hours * 3600)
    _register_routes(app)
    app.include_router(stow.router)
    _register_errors(app)
    hosts = HostPolicy(config.allowed_hosts or default_hosts(config.host))
    app.add_middleware(BrowserSafety, hosts=hosts)
    return app


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in columns
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


_SERIES_COLUMNS = [
    "study_uid",
    "series_uid",
    "modality",
    "description",
    "instances",
    "series_state",
    "last_received_at",
]
_JOB_COLUMNS = [
    "id",
    "state",
    "priority",
    "route",
    "pipeline",
    "subject",
    "attempts",
    "deliveries",
    "next_attempt_at",
    "finished_at",
    "error",
]


def _page(context: ApiContext) -> str:
    """The read-only status page (no inline script or style: the CSP forbids them)."""
    ready, checks = context.readiness()
    studies = series_rows(context.db)[-200:]
    jobs = job_rows(context.db)[-200:]
    for job in jobs:
        job["deliveries"] = ", ".join(f"{k} {v}" for k, v in job["deliveries"].items() if v)
    check_rows = [{"check": k, "result": v} for k, v in checks.items()]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>dicomnode</title>
<meta http-equiv="refresh" content="10"></head><body>
<h1>dicomnode</h1><p><b>RESEARCH USE ONLY.</b> Ready: {"yes" if ready else "NO"}</p>
{_table(check_rows, ["check", "result"])}
<h2>Series</h2>
{_table(studies, _SERIES_COLUMNS)}
<h2>Jobs</h2>
{_table(jobs, _JOB_COLUMNS)}
</body></html>"""

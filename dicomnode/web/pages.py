"""The operator's web pages, mounted into the node's FastAPI app (:func:`mount_pages`).

Server-rendered (Jinja2 templates in ``templates/``, one stylesheet in ``static/``; no
script: the CSP allows none inline and the pages need none). Reading needs what the API
needs (the token, a session, or nothing on a token-less loopback node); a page asked for
without it sends the browser to ``/login``. Every action is a form POST that carries the
session's CSRF token (:func:`dicomnode.api.auth.change_access`) and leaves an audit row
naming the operator. A page that shows patient identifiers leaves one audit row per view
(``web.identifiers_viewed``); identifiers and search terms never go to a log.

Routes
------
``GET /login``                              the login form (posts to ``/api/login``)
``GET /studies``                            search: patient, accession, dates, modality, state
``GET /studies/{study_uid}``                series, route decisions, jobs, deliveries, results
``GET /results/{sop_instance_uid}.dcm``     a result instance (download)
``GET /results/{sop_instance_uid}.png``     a result image as PNG (the summary preview)
``GET /queue``                              jobs and deliveries by state, with actions
``POST /queue/jobs/{id}/retry``, ``POST /queue/jobs/{id}/cancel``, ``POST /queue/send-now``
``GET /audit``                              the audit trail, filtered
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from dicomnode.api.auth import (
    CSRF_FIELD,
    Operator,
    change_access,
    ensure_session,
    form_fields,
    read_access,
)
from dicomnode.export.expedite import send_now
from dicomnode.jobs.cancel import cancel
from dicomnode.jobs.errors import JobError
from dicomnode.jobs.retry import retry
from dicomnode.store.audit import AuditKind, record
from dicomnode.store.db import Database
from dicomnode.web import queries
from dicomnode.web.queries import AuditFilter, Outcome, StudyFilter
from dicomnode.web.results import (
    PreviewError,
    ResultKind,
    is_uid,
    png_preview,
    result_kind,
    sr_findings,
)

__all__ = ["PageContext", "mount_pages"]

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
_PAGE_SIZE = 50


@dataclass(frozen=True)
class PageContext:
    """What the pages read: the database, the store and the results folder."""

    db: Database
    store_root: Path
    results_root: Path


def _when(value: dt.datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.filters["when"] = _when
    templates.env.filters["q"] = lambda value: quote(str(value), safe="")
    templates.env.globals["CSRF_FIELD"] = CSRF_FIELD
    return templates


def _context(request: Request) -> PageContext:
    context: PageContext = request.app.state.pages
    return context


class _LoginNeeded(Exception):
    def __init__(self, target: str):
        self.target = target


def _reader(request: Request) -> Operator:
    """Read access, or the login page for a browser without it."""
    try:
        return read_access(request)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise _LoginNeeded(target) from None


Pages = Annotated[PageContext, Depends(_context)]
Reader = Annotated[Operator, Depends(_reader)]
Changer = Annotated[Operator, Depends(change_access)]


def _peer(request: Request) -> str:
    return f"http@{request.client.host if request.client else '?'}"


def _audit(
    db: Database, request: Request, kind: AuditKind, detail: str, subject: str | None = None
) -> None:
    with db.session() as session:
        record(session, kind, subject=subject, peer=_peer(request), detail=detail[:2000])


def _who(operator: Operator) -> str:
    return f"{operator.identity} ({operator.access.value})"


class _Renderer:
    """Renders a template with the operator, a CSRF token and the nav."""

    def __init__(self) -> None:
        self.templates = _templates()

    def __call__(
        self, request: Request, operator: Operator, name: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        cookie = Response()
        session = operator.session or ensure_session(request, cookie)
        response = self.templates.TemplateResponse(
            request,
            name,
            {
                "operator": operator,
                "csrf": session.csrf if session is not None else "",
                "message": request.query_params.get("msg", "")[:300],
                **values,
            },
            status_code=status,
        )
        for key, value in cookie.raw_headers:
            if key == b"set-cookie":
                response.raw_headers.append((key, value))
        return response


def _parse_date(text: str | None, name: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise HTTPException(422, f"{name}: a date as YYYY-MM-DD") from None


def _page_number(text: str | None) -> int:
    if not text:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise HTTPException(422, "page: a whole number from 1 to 100000")
    return int(text)


def _study_filter(request: Request) -> tuple[StudyFilter, int]:
    params = request.query_params
    state = params.get("state") or None
    if state is not None and state not in {o.value for o in Outcome}:
        raise HTTPException(422, f"state: one of {', '.join(o.value for o in Outcome)}")
    page = _page_number(params.get("page"))
    return (
        StudyFilter(
            patient=params.get("patient", "")[:64].strip(),
            accession=params.get("accession", "")[:64].strip(),
            date_from=_parse_date(params.get("date_from"), "date_from"),
            date_to=_parse_date(params.get("date_to"), "date_to"),
            modality=params.get("modality", "")[:16].strip(),
            state=Outcome(state) if state else None,
            limit=_PAGE_SIZE,
            offset=(page - 1) * _PAGE_SIZE,
        ),
        page,
    )


def _back(target: str | None, message: str) -> RedirectResponse:
    """A 303 to the local page ``target`` (the queue otherwise) saying ``message``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        target = "/queue"
    path, _, query = target.partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith("msg=")]
    kept.append(urlencode({"msg": message[:300]}))
    return RedirectResponse(f"{path}?{'&'.join(kept)}", status_code=303)


def _register(app: FastAPI, render: _Renderer) -> None:  # noqa: C901 - one function per route
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> HTMLResponse:
        target = request.query_params.get("next", "/studies")
        return render.templates.TemplateResponse(
            request,
            "login.html",
            {
                "operator": None,
                "needs_token": request.app.state.http.token is not None,
                "failed": request.query_params.get("failed") == "1",
                "next": target if target.startswith("/") and not target.startswith("//") else "/",
                "message": "",
            },
        )

    @app.get("/studies", response_class=HTMLResponse, include_in_schema=False)
    def studies(request: Request, pages: Pages, operator: Reader) -> HTMLResponse:
        query, page = _study_filter(request)
        found = queries.search_studies(pages.db, pages.store_root, query)
        if found.rows:
            _audit(
                pages.db,
                request,
                AuditKind.IDENTIFIERS_VIEWED,
                f"{_who(operator)}: studies list, {len(found.rows)} studies",
            )
        params = {k: v for k, v in request.query_params.items() if k not in ("page", "msg")}
        return render(
            request,
            operator,
            "studies.html",
            found=found,
            page=page,
            pages=max(1, -(-found.total // _PAGE_SIZE)),
            params=params,
            base_query=urlencode(params),
            outcomes=[o.value for o in Outcome],
        )

    @app.get("/studies/{study_uid}", response_class=HTMLResponse, include_in_schema=False)
    def study(request: Request, pages: Pages, operator: Reader, study_uid: str) -> HTMLResponse:
        if not is_uid(study_uid):
            raise HTTPException(422, "study_uid: not a valid UID")
        shown = queries.study_page(pages.db, pages.store_root, study_uid)
        if shown is None:
            return render(request, operator, "missing.html", 404, what=f"study {study_uid}")
        _audit(
            pages.db,
            request,
            AuditKind.IDENTIFIERS_VIEWED,
            f"{_who(operator)}: study page",
            subject=study_uid,
        )
        findings: dict[str, Any] = {}
        for result in shown.results:
            if result_kind(result.sop_class_uid) is ResultKind.SR:
                try:
                    findings[result.sop_instance_uid] = sr_findings(
                        pages.results_root / result.path
                    )
                except PreviewError as exc:
                    findings[result.sop_instance_uid] = str(exc)
        return render(
            request,
            operator,
            "study.html",
            study=shown,
            findings=findings,
            kinds={r.sop_instance_uid: result_kind(r.sop_class_uid).value for r in shown.results},
        )

    def _result(pages: PageContext, sop_instance_uid: str) -> tuple[queries.ResultRef, Path]:
        if not is_uid(sop_instance_uid):
            raise HTTPException(422, "sop_instance_uid: not a valid UID")
        ref = queries.result_ref(pages.db, sop_instance_uid)
        path = pages.results_root / ref.path if ref is not None else None
        if ref is None or path is None or not path.is_file():
            raise HTTPException(404, f"no result {sop_instance_uid}")
        return ref, path

    @app.get("/results/{sop_instance_uid}.dcm", include_in_schema=False)
    def download(
        request: Request, pages: Pages, operator: Reader, sop_instance_uid: str
    ) -> FileResponse:
        ref, path = _result(pages, sop_instance_uid)
        _audit(
            pages.db,
            request,
            AuditKind.IDENTIFIERS_VIEWED,
            f"{_who(operator)}: downloaded result {ref.sop_instance_uid} of job {ref.job_id}",
            subject=ref.study_uid,
        )
        return FileResponse(
            path,
            media_type="application/dicom",
            filename=f"{ref.sop_instance_uid}.dcm",
        )

    @app.get("/results/{sop_instance_uid}.png", include_in_schema=False)
    async def preview(
        request: Request, pages: Pages, operator: Reader, sop_instance_uid: str
    ) -> Response:
        _, path = await run_in_threadpool(_result, pages, sop_instance_uid)
        try:
            png = await run_in_threadpool(png_preview, path)
        except PreviewError as exc:
            raise HTTPException(422, str(exc)) from None
        return Response(png, media_type="image/png")  # no-store, like every page

    @app.get("/queue", response_class=HTMLResponse, include_in_schema=False)
    def queue_page(request: Request, pages: Pages, operator: Reader) -> HTMLResponse:
        return render(request, operator, "queue.html", queue=queries.queue(pages.db))

    async def _action(
        request: Request, pages: PageContext, operator: Operator, what: str, act: Any
    ) -> RedirectResponse:
        fields = await form_fields(request)
        try:
            message = await run_in_threadpool(act)
        except JobError as exc:
            message = f"not done: {exc}"
        await run_in_threadpool(
            _audit,
            pages.db,
            request,
            AuditKind.OPERATOR_ACTION,
            f"{_who(operator)}: {what}: {message}",
        )
        return _back(fields.get("next"), message)

    @app.post("/queue/jobs/{job_id}/retry", include_in_schema=False)
    async def retry_job(
        request: Request, pages: Pages, operator: Changer, job_id: str
    ) -> RedirectResponse:
        return await _action(
            request,
            pages,
            operator,
            f"retry job {job_id[:24]}",
            lambda: retry(pages.db, job_id, by=f"web: {operator.identity}"),
        )

    @app.post("/queue/jobs/{job_id}/cancel", include_in_schema=False)
    async def cancel_job(
        request: Request, pages: Pages, operator: Changer, job_id: str
    ) -> RedirectResponse:
        return await _action(
            request,
            pages,
            operator,
            f"cancel job {job_id[:24]}",
            lambda: cancel(pages.db, job_id, by=operator.identity),
        )

    @app.post("/queue/send-now", include_in_schema=False)
    async def send_now_page(request: Request, pages: Pages, operator: Changer) -> RedirectResponse:
        fields = await form_fields(request)
        destination = fields.get("destination") or None

        def act() -> str:
            count = send_now(pages.db, destination=destination, by=f"web: {operator.identity}")
            return (
                f"{count} pending deliveries{f' to {destination}' if destination else ''} due now"
            )

        return await _action(request, pages, operator, "send now", act)

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(request: Request, pages: Pages, operator: Reader) -> HTMLResponse:
        params = request.query_params
        since = _parse_date(params.get("since"), "since")
        page = _page_number(params.get("page"))
        query = AuditFilter(
            kind=params.get("kind", "")[:48].strip(),
            subject=params.get("subject", "")[:64].strip(),
            text=params.get("text", "")[:200],
            since=dt.datetime.combine(since, dt.time(), dt.UTC) if since else None,
            limit=100,
            offset=(page - 1) * 100,
        )
        rows, total = queries.audit_trail(pages.db, query)
        kept = {k: v for k, v in params.items() if k not in ("page", "msg")}
        return render(
            request,
            operator,
            "audit.html",
            rows=rows,
            total=total,
            query=query,
            params=kept,
            base_query=urlencode(kept),
            page=page,
            pages=max(1, -(-total // 100)),
            kinds=sorted({k.value for k in AuditKind}),
        )


def mount_pages(app: FastAPI, context: PageContext) -> None:
    """Add the web pages, their stylesheet and the login redirect to ``app``."""
    app.state.pages = context
    render = _Renderer()

    @app.exception_handler(_LoginNeeded)
    async def login_needed(_: Request, exc: _LoginNeeded) -> RedirectResponse:
        return RedirectResponse(f"/login?{urlencode({'next': exc.target})}", status_code=303)

    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    _register(app, render)

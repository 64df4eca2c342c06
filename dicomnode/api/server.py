"""The HTTP API (stdlib server in a thread): health, readiness, metrics, JSON, retry, a page.

Routes
------
``GET /healthz``                    the process answers (never needs the token)
``GET /readyz``                     database, store, scheduler and workers; 503 when not ready
``GET /metrics``                    Prometheus text format
``GET /api/studies``                series with their study, state and instance count
``GET /api/jobs[?state=S]``         jobs with their delivery counts
``GET /api/deliveries[?state=S]``   deliveries
``POST /api/jobs/<id>/retry``       queue a job (and its dead deliveries) again; 422 for an id
                                    no job can have (not 1 … 2**63-1)
``POST /api/deliveries/send-now[?destination=NAME]``
                                    pending deliveries skip their backoff (due now)
``GET /``                           a read-only HTML status page over the same data

With ``http.token`` set, every route but ``/healthz`` needs ``Authorization: Bearer <token>``.
Responses carry UIDs, states and counts, never patient identifiers.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dicomnode.api.metrics import NodeMetrics
from dicomnode.config.schema import HttpConfig
from dicomnode.export.expedite import send_now
from dicomnode.export.report import delivery_rows
from dicomnode.jobs.errors import InvalidJobId, JobError
from dicomnode.jobs.report import job_rows
from dicomnode.jobs.retry import retry
from dicomnode.store.db import Database
from dicomnode.store.report import series_rows

__all__ = ["ApiServer"]

log = logging.getLogger(__name__)
_RETRY = re.compile(r"^/api/jobs/([^/]*)/retry$")

#: Readiness checks: name -> callable returning (ok, detail).
Checks = Mapping[str, Callable[[], tuple[bool, str]]]


class ApiServer:
    """Serve the API on ``config.host:config.port`` in a daemon thread.

    Parameters
    ----------
    config : HttpConfig
        Address and token.
    db : Database
        The state database.
    metrics : NodeMetrics
        The registry to expose.
    checks : Mapping
        Readiness checks by name.
    """

    def __init__(self, config: HttpConfig, db: Database, metrics: NodeMetrics, checks: Checks):
        self.config = config
        self.db = db
        self.metrics = metrics
        self.checks = checks
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer((config.host, config.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dicomnode-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("http api listening", extra={"host": self.config.host, "port": self.port})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

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


class _Handler(BaseHTTPRequestHandler):
    api: ApiServer
    server_version = "dicomnode"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http %s", format % args)

    def _authorised(self, path: str) -> bool:
        token = self.api.config.token
        if token is None or path == "/healthz":
            return True
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {token}"
        return hmac.compare_digest(given.encode(), expected.encode())

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="dicomnode"')
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, indent=1).encode(), "application/json")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        if not self._authorised(url.path):
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if method == "GET":
                self._get(url.path, query)
            else:
                self._post(url.path, query)
        except InvalidJobId as exc:
            self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)})
        except JobError as exc:
            self._json(HTTPStatus.CONFLICT, {"error": str(exc)})
        except ValueError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Exception:  # never leak internals (or data) in a 500
            log.exception("http handler failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    def _get(self, path: str, query: dict[str, str]) -> None:
        api = self.api
        if path == "/healthz":
            self._json(HTTPStatus.OK, {"status": "ok"})
        elif path == "/readyz":
            ready, checks = api.readiness()
            self._json(
                HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                {"ready": ready, "checks": checks},
            )
        elif path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(api.metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/api/studies":
            self._json(HTTPStatus.OK, series_rows(api.db))
        elif path == "/api/jobs":
            self._json(HTTPStatus.OK, job_rows(api.db, state=query.get("state")))
        elif path == "/api/deliveries":
            self._json(HTTPStatus.OK, delivery_rows(api.db, state=query.get("state")))
        elif path == "/":
            self._send(HTTPStatus.OK, _page(api).encode(), "text/html; charset=utf-8")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {path}"})

    def _post(self, path: str, query: dict[str, str]) -> None:
        if path == "/api/deliveries/send-now":
            destination = query.get("destination")
            count = send_now(self.api.db, destination=destination, by="HTTP API")
            where = f" to {destination}" if destination else ""
            message = f"{count} pending deliveries{where} due now"
            self._json(HTTPStatus.OK, {"message": message, "deliveries": count})
            return
        match = _RETRY.match(path)
        if not match:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {path}"})
            return
        self._json(HTTPStatus.OK, {"message": retry(self.api.db, match.group(1))})


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(api: ApiServer) -> str:
    ready, checks = api.readiness()
    studies = series_rows(api.db)[-200:]
    jobs = job_rows(api.db)[-200:]
    for job in jobs:
        job["deliveries"] = ", ".join(f"{k} {v}" for k, v in job["deliveries"].items() if v)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>dicomnode</title>
<meta http-equiv="refresh" content="10">
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}}</style></head><body>
<h1>dicomnode</h1><p><b>RESEARCH USE ONLY.</b> Ready: {"yes" if ready else "NO"}</p>
{_table([{"check": k, "result": v} for k, v in checks.items()], ["check", "result"])}
<h2>Series</h2>
{
        _table(
            studies,
            [
                "study_uid",
                "series_uid",
                "modality",
                "description",
                "instances",
                "series_state",
                "last_received_at",
            ],
        )
    }
<h2>Jobs</h2>
{
        _table(
            jobs,
            [
                "id",
                "state",
                "route",
                "pipeline",
                "subject",
                "attempts",
                "deliveries",
                "next_attempt_at",
                "finished_at",
                "error",
            ],
        )
    }
</body></html>"""

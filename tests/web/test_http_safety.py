"""The HTTP surface of a running node, browser-safe by default: allowed Host headers, no
cross-site changes, security headers, token or session + CSRF, typed errors, filters, and
slow clients that cost neither threads nor the health check."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import time
from pathlib import Path

import pytest

from testkit import dicomgen
from testkit.nodeproc import storescu
from testkit.pki import make_pki

TOKEN = "web-safety-token-for-tests-0123456789"
Answer = tuple[int, dict[str, str], str]


def _request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    tls: ssl.SSLContext | None = None,
) -> Answer:
    """One request with exactly these headers (``Host`` defaults to 127.0.0.1:port); over
    HTTPS with ``tls``."""
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        if body is not None:
            sent.setdefault("Content-Length", str(len(body)))
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read().decode(),
        )
    finally:
        conn.close()


def _json(answer: Answer) -> object:
    return json.loads(answer[2])


def _assert_security_headers(headers: dict[str, str]) -> None:
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"


def _store(node, tmp_path: Path, name: str, modality: str, count: int) -> str:
    (spec,) = dicomgen.study(name, [count], modality=modality)
    assert storescu(node.port, dicomgen.write_series(spec, tmp_path / name)).returncode == 0
    return spec.series_uid


def test_loopback_without_token_refuses_foreign_hosts_and_cross_site_changes(
    node_factory, tmp_path
):
    node = node_factory().start()
    port = node.http_port
    ct = _store(node, tmp_path, "web-ct", "CT", 2)
    mr = _store(node, tmp_path, "web-mr", "MR", 3)

    # DNS rebinding: a foreign Host is refused before any route, with or without a port
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.2:{port}"):
        status, headers, body = _request(port, "GET", "/api/studies", {"Host": host})
        assert status == 400 and "Host" in body and ct not in body, host
        _assert_security_headers(headers)
    for host in (f"localhost:{port}", "localhost", f"[::1]:{port}", f"127.0.0.1:{port}"):
        assert _request(port, "GET", "/healthz", {"Host": host})[0] == 200, host

    # cross-site changes: a foreign Origin, or a browser's Sec-Fetch-Site, is 403
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://localhost:{port}"},  # another origin than the Host asked
        {"Sec-Fetch-Site": "cross-site"},
    ):
        for path in ("/api/deliveries/send-now", "/api/jobs/1/retry"):
            status, answer_headers, body = _request(port, "POST", path, headers, b"")
            assert status == 403 and "cross-site" in body, (headers, path)
            _assert_security_headers(answer_headers)
    # a browser on the node's own page, but without a session and its CSRF token: 403
    same_origin = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    assert _request(port, "POST", "/api/deliveries/send-now", same_origin, b"")[0] == 403
    # a tool (curl, the CLI) stays welcome on loopback
    status, headers, body = _request(port, "POST", "/api/deliveries/send-now", body=b"")
    assert (status, _json((status, headers, body))) == (
        200,
        {"message": "0 pending deliveries due now", "deliveries": 0},
    )
    _assert_security_headers(headers)

    # the web session: login, then changes need its CSRF token
    status, headers, body = _request(
        port, "POST", "/api/login", {**same_origin, "Content-Type": "application/json"}, b"{}"
    )
    assert status == 200, body
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    session = {**same_origin, "Cookie": cookie.split(";")[0]}
    csrf = _json((status, headers, body))["csrf_token"]  # type: ignore[index]
    assert _request(port, "POST", "/api/deliveries/send-now", session, b"")[0] == 403
    wrong = {**session, "X-CSRF-Token": "x" * len(csrf)}
    assert _request(port, "POST", "/api/deliveries/send-now", wrong, b"")[0] == 403
    assert (
        _request(port, "POST", "/api/deliveries/send-now", {**session, "X-CSRF-Token": csrf}, b"")[
            0
        ]
        == 200
    )
    form = {**session, "Content-Type": "application/x-www-form-urlencoded"}
    assert (
        _request(port, "POST", "/api/jobs/77/retry", form, f"csrf_token={csrf}".encode())[0] == 404
    )
    assert _request(port, "POST", "/api/logout", {**session, "X-CSRF-Token": csrf}, b"")[0] == 200
    assert (
        _request(port, "POST", "/api/deliveries/send-now", {**session, "X-CSRF-Token": csrf}, b"")[
            0
        ]
        == 403
    )
    kinds = [
        kind for (kind,) in node.query("select kind from audit_events where kind like 'web.%'")
    ]
    assert kinds == ["web.login", "web.logout"]

    # typed errors: unknown job 404, ids no job can have and bad parameters 422, never a 500
    assert _request(port, "POST", "/api/jobs/4711/retry", body=b"")[:1] == (404,)
    for bad in ("0", "-1", "abc", "99999999999999999999"):
        status, _, body = _request(port, "POST", f"/api/jobs/{bad}/retry", body=b"")
        assert status == 422 and "must be a whole number" in body, bad
    for query in ("state=bogus", "limit=0", "offset=-1", "order=sideways", "since=yesterday"):
        status, _, body = _request(port, "GET", f"/api/jobs?{query}")
        assert status == 422 and "error" in json.loads(body), query
    assert _request(port, "GET", "/api/nope")[0] == 404

    # filters and paging: the modality filter (the bug), state, q, order, limit
    def uids(query: str) -> list[str]:
        status, headers, body = _request(port, "GET", f"/api/studies?{query}")
        assert status == 200, body
        rows = json.loads(body)
        assert int(headers["x-total-count"]) >= len(rows)
        return [row["series_uid"] for row in rows]

    assert uids("modality=MR") == [mr] and uids("modality=ct") == [ct]
    assert uids("modality=SEG") == []
    assert uids("order=oldest") == [ct, mr] and uids("order=newest") == [mr, ct]
    assert uids("order=newest&limit=1") == [mr] and uids("order=newest&limit=1&offset=1") == [ct]
    assert uids(f"q={mr[-12:]}") == [mr] and uids("q=TEST+CT") == [ct]
    assert uids("since=2999-01-01T00:00:00Z") == [] and len(uids("since=2000-01-01")) == 2
    assert set(uids("state=open")) | set(uids("state=complete")) == {ct, mr}

    schema = _json(_request(port, "GET", "/api/openapi.json"))
    assert {"/api/studies", "/api/jobs", "/api/deliveries", "/api/jobs/{job_id}/retry"} <= set(
        schema["paths"]  # type: ignore[index]
    )
    status, headers, page = _request(port, "GET", "/")
    assert status == 200 and mr in page and "None" not in page
    _assert_security_headers(headers)


def test_every_route_needs_the_token_or_a_session_when_one_is_set(node_factory):
    node = node_factory(http={"token": TOKEN}).start()
    port = node.http_port
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    routes = [
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/api/studies"),
        ("GET", "/api/jobs"),
        ("GET", "/api/deliveries"),
        ("GET", "/api/session"),
        ("GET", "/"),
        ("POST", "/api/deliveries/send-now"),
        ("POST", "/api/jobs/4711/retry"),
    ]
    for method, path in routes:
        body = b"" if method == "POST" else None
        status, headers, _ = _request(port, method, path, body=body)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer"), path
        wrong = {"Authorization": "Bearer " + "w" * len(TOKEN)}
        assert _request(port, method, path, wrong, body)[0] == 401, path
        expected = 404 if path.endswith("/retry") else 200
        assert _request(port, method, path, bearer, body)[0] == expected, path
    assert _request(port, "GET", "/healthz")[0] == 200
    # the token works from a tool; from another site it does not
    evil = {**bearer, "Origin": "http://evil.example"}
    assert _request(port, "POST", "/api/deliveries/send-now", evil, b"")[0] == 403

    # login with the token: a session cookie that reads, and changes with its CSRF token
    form = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": f"http://127.0.0.1:{port}",
    }
    status, headers, _ = _request(port, "POST", "/api/login", form, b"token=nope&next=/")
    assert (
        status == 303 and headers["location"] == "/login?failed=1" and "set-cookie" not in headers
    )
    status, headers, _ = _request(
        port,
        "POST",
        "/api/login",
        form,
        f"token={TOKEN}&operator=Dr+Who&next=//evil.example".encode(),
    )
    assert status == 303 and headers["location"] == "/"  # no open redirect
    session = {"Cookie": headers["set-cookie"].split(";")[0]}
    status, _, body = _request(port, "GET", "/api/session", session)
    info = json.loads(body)
    assert status == 200 and info["identity"] == "Dr Who" and info["access"] == "session"
    assert _request(port, "GET", "/api/studies", session)[0] == 200
    assert _request(port, "POST", "/api/deliveries/send-now", session, b"")[0] == 403
    csrf = {**session, "X-CSRF-Token": info["csrf_token"]}
    assert _request(port, "POST", "/api/deliveries/send-now", csrf, b"")[0] == 200
    alerts = node.query("select detail from audit_events where kind = 'security.alert'")
    assert ("web login refused: wrong token",) in alerts


def test_https_sets_a_secure_cookie_and_hsts(node_factory, tmp_path):
    pki = make_pki(tmp_path / "pki")
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    bad = node_factory("bad", http={"tls": {"cert": str(broken), "key": str(pki.server_key)}})
    with pytest.raises(RuntimeError, match="http.tls: .*broken.pem"):
        bad.start()
    tls = {"cert": str(pki.server_chain), "key": str(pki.server_key)}
    node = node_factory(http={"token": TOKEN, "tls": tls}).start()
    port, context = node.http_port, pki.client_context(cert=None)
    status, headers, body = _request(
        port,
        "POST",
        "/api/login",
        {"Content-Type": "application/json", "Origin": f"https://127.0.0.1:{port}"},
        json.dumps({"token": TOKEN}).encode(),
        tls=context,
    )
    assert status == 200, body
    assert "Secure" in headers["set-cookie"] and "HttpOnly" in headers["set-cookie"]
    assert headers["strict-transport-security"].startswith("max-age=")
    _assert_security_headers(headers)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        _request(port, "GET", "/healthz")  # plain HTTP on the HTTPS port: no answer


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_slow_clients_cost_no_threads_and_health_stays_fast(node_factory):
    node = node_factory(http={"timeout_header": 4, "timeout_body": 2}).start()
    port = node.http_port
    pid = node.proc.pid
    before = _threads(pid)
    # a body that stops after 10 of its 100 bytes
    staller = socket.create_connection(("127.0.0.1", port), timeout=5)
    staller.sendall(
        f"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
        '\r\nContent-Length: 100\r\n\r\n{"token": '.encode()
    )
    clients = [staller]
    for _ in range(150):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /api/stu")  # a request line that never ends
        clients.append(sock)
    worst = 0.0
    most = before
    try:
        for round_ in range(3):
            for n, sock in enumerate(clients):
                if n % 10 == round_:
                    sock.sendall(b"d")  # slowloris: a byte now and then
            started = time.monotonic()
            status = _request(port, "GET", "/healthz")[0]
            worst = max(worst, time.monotonic() - started)
            most = max(most, _threads(pid))
            assert status == 200
            time.sleep(0.3)
        print(
            f"threads {before} before, {most} at most with 150 slow clients; healthz {worst:.3f} s"
        )
        assert most <= 100 and most - before <= 5
        assert worst < 1.0
        # the header timeout closes them: each socket reads EOF (or a reset) within the limit
        deadline = time.monotonic() + 15
        for sock in clients:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1024) == b""
    finally:
        for sock in clients:
            sock.close()
    assert _request(port, "GET", "/healthz")[0] == 200

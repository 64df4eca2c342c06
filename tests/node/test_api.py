"""The HTTP API of a running node: health, readiness, metrics, JSON, auth."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from testkit import dicomgen
from testkit.nodeproc import storescu

TOKEN = "s3cret-token-for-tests-0123456789"


def _get(node, path: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{node.http_port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + "$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in metrics"
    return float(match.group(1))


def test_metrics_and_json_follow_a_received_study(node_factory, tmp_path):
    node = node_factory().start()
    status, body = _get(node, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, body = _get(node, "/readyz")
    assert status == 200, body
    checks = json.loads(body)["checks"]
    assert set(checks) == {"database", "store", "scheduler", "workers"}
    _, before = _get(node, "/metrics")
    assert _metric(before, "dicomnode_instances_received_total", 'outcome="stored"') == 0
    spec = dicomgen.study("api", [5])[0]
    assert storescu(node.port, dicomgen.write_series(spec, tmp_path / "s")).returncode == 0
    _, after = _get(node, "/metrics")
    assert _metric(after, "dicomnode_instances_received_total", 'outcome="stored"') == 5
    assert _metric(after, "dicomnode_received_bytes_total") > 5 * 32 * 32 * 2
    assert _metric(after, "dicomnode_associations_total", 'result="accepted"') >= 1
    assert (
        _metric(after, "dicomnode_series", 'state="open"')
        + _metric(after, "dicomnode_series", 'state="complete"')
        == 1
    )
    assert "dicomnode_jobs{" in after
    status, studies = _get(node, "/api/studies")
    assert status == 200
    (row,) = json.loads(studies)
    assert row["series_uid"] == spec.series_uid and row["instances"] == 5
    assert _get(node, "/api/jobs")[0] == 200
    assert _get(node, "/api/deliveries")[0] == 200
    assert _get(node, "/api/jobs?state=bogus")[0] == 422
    assert _get(node, "/nope")[0] == 404
    status, page = _get(node, "/")
    assert status == 200 and "RESEARCH USE ONLY" in page and spec.series_uid in page
    for text in (after, studies, page):
        assert dicomgen.CANARY_NAME not in text and dicomgen.CANARY_ID not in text


def test_token_is_required_when_set(node_factory):
    node = node_factory(http={"token": TOKEN}).start()
    assert _get(node, "/healthz")[0] == 200
    for path in ("/metrics", "/api/studies", "/readyz", "/"):
        assert _get(node, path)[0] == 401
        assert _get(node, path, token="wrong-token-wrong-token")[0] == 401
        assert _get(node, path, token=TOKEN)[0] == 200


def test_non_loopback_bind_without_token_refuses_to_start(node_factory):
    node = node_factory(http={"host": "0.0.0.0"})
    out = node.cli("check")
    assert out.returncode == 2
    assert "http" in out.stderr and "token" in out.stderr
    with pytest.raises(RuntimeError, match="token"):
        node.start()

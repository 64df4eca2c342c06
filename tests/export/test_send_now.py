"""Deliveries that back off, through a node subprocess and real peers on loopback: the next
attempt time in ``jobs``/the API, ``send-now`` (CLI and API), the C-ECHO probe that sends as
soon as a destination is back, and job ids no job can have (CLI exit 2, HTTP 422)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from dicomnode.store.models import utcnow
from testkit.nodeproc import storescu, wait_for
from testkit.seriesgen import specs, write_series
from tests.export.peers import StatusSCP
from tests.export.test_delivery import jobs, node_config, send, wait_jobs

TOKEN = "send-now-token-for-tests-0123456789"
#: Export timings of a node whose failed deliveries wait 10 minutes.
LONG_BACKOFF = {"backoff_seconds": 600, "max_backoff_seconds": 600}


def _post(node, path: str, token: str | None = TOKEN) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{node.http_port}{path}", data=b"", method="POST"
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(node, path: str) -> list[dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{node.http_port}{path}")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _backing_off(node, pending: int) -> list[dict]:
    """The jobs once ``pending`` deliveries failed and wait about 10 minutes."""

    def ready(rows: list[dict]) -> list[dict] | None:
        waiting = sum(r["deliveries"]["pending"] for r in rows)
        nexts = [r["next_attempt_at"] for r in rows if r["next_attempt_at"]]
        late = utcnow() + timedelta(seconds=500)
        if waiting == pending and nexts and all(datetime.fromisoformat(n) > late for n in nexts):
            return rows
        return None

    return wait_jobs(node, ready, f"{pending} deliveries backing off")


def test_a_destination_that_comes_back_gets_its_deliveries_within_seconds(node_factory, tmp_path):
    scp = StatusSCP(0)  # the PACS, down at first
    config = node_config(scp.port, export={**LONG_BACKOFF, "probe_seconds": 1})
    node = node_factory(**config, http={"token": TOKEN}).start()
    try:
        send(node, tmp_path, "probe", value=5)
        (job,) = _backing_off(node, pending=3)
        # the next attempt is shown: in the table (NEXT) and in the API's deliveries
        table = node.cli("jobs").stdout.splitlines()
        assert table[0].split()[7] == "NEXT"
        row = next(line for line in table if line.split()[0] == str(job["id"]))
        assert row.split()[7].startswith("9m")
        deliveries = _get(node, "/api/deliveries")
        assert len(deliveries) == 3
        nexts = sorted(d["next_attempt_at"] for d in deliveries)
        assert nexts[0] == job["next_attempt_at"]  # the job shows its earliest
        late = utcnow() + timedelta(seconds=500)
        assert all(datetime.fromisoformat(n) > late for n in nexts)
        assert all(d["state"] == "pending" and d["attempts"] == 1 for d in deliveries)
        time.sleep(3)  # a few probes of the peer that is down
        # they cost no association attempt: the only one is the delivery's own
        assert node.log_text().count("Association request failed") == 1
        scp.start()
        started = time.monotonic()
        wait_jobs(node, lambda rows: rows[0]["deliveries"]["delivered"] == 3, "delivered")
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"{elapsed:.1f} s after the destination came back"
        assert len(scp.received) == 3
        assert jobs(node)[0]["next_attempt_at"] is None
        assert "destination answers again" in node.log_text()
    finally:
        scp.stop()


def test_send_now_skips_the_backoff_by_cli_and_api(node_factory, tmp_path):
    pacs, other = StatusSCP(0), StatusSCP(0)
    config = node_config(pacs.port, export={**LONG_BACKOFF, "probe_seconds": 0})
    config["destinations"]["other"] = {"ae_title": "PACS", "host": "127.0.0.1", "port": other.port}
    config["routes"][0]["send_to"] = ["pacs", "other"]
    node = node_factory(**config, http={"token": TOKEN}).start()
    try:
        (ct,) = specs("send-now", 1)
        files = write_series(ct, tmp_path / "in", value=5)
        assert storescu(node.port, files).returncode == 0
        _backing_off(node, pending=6)
        pacs.start()
        other.start()
        time.sleep(3)  # no probe: the 10-minute backoff holds
        assert pacs.received == [] and other.received == []
        out = node.cli("send-now", "--destination", "nope")
        assert out.returncode == 2 and out.stderr.count("\n") == 1
        assert "no destination 'nope' (other, pacs)" in out.stderr
        out = node.cli("send-now", "--destination", "pacs")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("3 pending deliveries to pacs due now")
        wait_for(lambda: len(pacs.received) == 3, what="pacs delivered", timeout=15)
        time.sleep(1)
        assert other.received == []  # only the destination asked for
        assert _post(node, "/api/deliveries/send-now", token=None)[0] == 401
        status, body = _post(node, "/api/deliveries/send-now")
        assert (status, body["deliveries"]) == (200, 3)
        wait_for(lambda: len(other.received) == 3, what="other delivered", timeout=15)
        (job,) = jobs(node)
        assert job["deliveries"]["delivered"] == 6 and job["next_attempt_at"] is None
        assert _post(node, "/api/deliveries/send-now?destination=pacs")[1]["deliveries"] == 0

        # job ids no job can have: exit 2 / 422, one line, no traceback; an unknown one: 404
        for bad in ("99999999999999999999", "0", "-3"):
            out = node.cli("retry", bad)
            assert out.returncode == 2, (bad, out.stderr)
            assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
            assert "must be a whole number from 1 to 9223372036854775807" in out.stderr
        for bad in ("99999999999999999999", "0", "abc", "00000000000000000000"):
            status, body = _post(node, f"/api/jobs/{bad}/retry")
            assert status == 422, (bad, body)
            assert "must be a whole number" in body["error"]
        status, body = _post(node, "/api/jobs/9223372036854775807/retry")
        assert (status, body) == (404, {"error": "no job 9223372036854775807"})
        assert node.cli("retry", "4711").returncode == 1

        # the modality sends one instance again, changed: the series is routed again (job 2),
        # and retrying job 1 says that its inputs changed and which job covers them now
        changed = write_series(ct, tmp_path / "again", value=9)[:1]
        assert storescu(node.port, changed).returncode == 0
        wait_jobs(node, lambda rows: len(rows) == 2, "the re-run job")
        out = node.cli("retry", str(job["id"]))
        assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
        assert f"job {job['id']}: its input series changed since it was queued" in out.stderr
        assert "covers the current instances: nothing queued, retry job 2 instead" in out.stderr
    finally:
        pacs.stop()
        other.stop()

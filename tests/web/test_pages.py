"""The web pages over a real node (no browser): the studies search and its filters, route
outcomes in the words of ``route explain``, the study page's results, downloads and previews,
audited identifier views and actions, CSRF on actions, and the queries' small parts."""

from __future__ import annotations

import http.client
import io
import re
from pathlib import Path
from urllib.parse import quote, urlencode

import pydicom
import pytest
from PIL import Image

from dicomnode.jobs.cancel import cancel
from dicomnode.jobs.errors import JobError, NoSuchJob
from dicomnode.jobs.models import Job, JobState
from dicomnode.store.db import open_database
from dicomnode.web.queries import Outcome, StudyFilter, _no_route_words, outcome_of
from testkit import dicomgen, seriesgen
from testkit.jobrows import job_row
from testkit.nodeproc import free_port, storescu, toy_export_config, wait_for

Answer = tuple[int, dict[str, str], bytes]


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> Answer:
    return _request(port, "GET", path, headers)


def _request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: str = ""
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        sent = dict(headers or {})
        if body:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body.encode() or None, headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _study(root: Path, name: str, modality: str, description: str, accession: str) -> list[Path]:
    (spec,) = dicomgen.study(name, [4], modality=modality)
    paths = seriesgen.write_series(spec, root / name, description=description, value=40)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID = f"TEST^{name.upper()}", f"PID-{name}"
        ds.AccessionNumber = accession
        ds.StudyDate = {"ct": "20260110", "mr": "20260220", "refused": "20260330"}[name]
        ds.save_as(path, enforce_file_format=True)
    return paths


def _rows(page: bytes) -> list[str]:
    body = page.decode()
    return re.findall(r"<tr>\s*<td><a href=\"/studies/[^\"]+\">.*?</tr>", body, re.S)


def test_pages_over_a_real_node(node_factory, tmp_path):
    config = toy_export_config(free_port(), free_port())
    config["destinations"] = {}
    config["routes"][0].update(send_to=[], shadow=True)
    config["stability"] = {"series_seconds": 1, "study_seconds": 2}
    node = node_factory(**config).start()
    files = [
        *_study(tmp_path, "ct", "CT", "CHEST", "ACC-CT"),
        *_study(tmp_path, "mr", "MR", "BRAIN", "ACC-MR"),
        *_study(tmp_path, "refused", "CT", "TOY:refuse", "ACC-REF"),
    ]
    assert storescu(node.port, files).returncode == 0
    wait_for(
        lambda: (
            sorted(node.query("select state from jobs")) == [("refused",), ("succeeded",)]
            and node.query("select count(*) from audit_events where kind = 'routing.no_match'")[0][
                0
            ]
        ),
        "jobs done and the MR unrouted",
    )
    port = node.http_port

    status, headers, page = _get(port, "/studies")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "script" not in page.decode().lower()  # no script: the CSP allows none inline
    rows = _rows(page)
    assert len(rows) == 3
    outcomes = {re.search(r"TEST\^(\w+)", r).group(1): r for r in rows}
    assert "analysed" in outcomes["CT"] and "no route" in outcomes["MR"]
    assert "refused" in outcomes["REFUSED"]

    def found(**query: str) -> list[str]:
        status, _, body = _get(port, "/studies?" + urlencode(query))
        assert status == 200
        return re.findall(r"TEST\^(\w+)", " ".join(_rows(body)))

    assert found(modality="mr") == ["MR"]
    assert found(state="no route") == ["MR"]
    assert found(patient="test ct") == ["CT"] and found(patient="PID-refused") == ["REFUSED"]
    assert found(accession="acc-ref") == ["REFUSED"]
    assert sorted(found(date_from="2026-02-01")) == ["MR", "REFUSED"]
    assert found(date_from="2026-02-01", date_to="2026-02-28") == ["MR"]
    assert found(accession="nothing") == []
    assert _get(port, "/studies?date_from=yesterday")[0] == 422
    assert _get(port, "/studies?state=lost")[0] == 422

    # the study pages: route decisions as route explain words them, results, full UIDs
    study_of = dict(node.query("select state, study_uid from jobs"))
    mr_study = dicomgen.study("mr", [4], modality="MR")[0].study_uid
    status, _, mr_page = _get(port, f"/studies/{mr_study}")
    assert status == 200
    assert "no route matched: no: Modality: expected &#39;CT&#39;, got &#39;MR&#39;" in (
        mr_page.decode()
    )
    status, _, refused_page = _get(port, f"/studies/{study_of['refused']}")
    assert "refused by the pipeline: refused by toy" in refused_page.decode()
    status, _, ct_page = _get(port, f"/studies/{study_of['succeeded']}")
    text = ct_page.decode()
    for (uid,) in node.query("select sop_instance_uid from job_results"):
        assert f"<code>{uid}</code>" in text  # never truncated
    assert '<table class="findings">' in text and "lung_nodule" in text
    assert len(re.findall(r"<li><span class=\"stage\">", text)) >= 6  # the job's timeline

    summary = re.search(r'<img class="preview" src="(/results/[0-9.]+\.png)"', text).group(1)
    status, headers, png = _get(port, summary)
    assert status == 200 and headers["content-type"] == "image/png"
    assert headers["cache-control"] == "no-store"  # an image of a patient stays out of caches
    assert Image.open(io.BytesIO(png)).mode == "RGB"
    sr_uid = node.query(
        "select sop_instance_uid from job_results"
        " where sop_class_uid like '1.2.840.10008.5.1.4.1.1.88.%'"
    )[0][0]
    status, headers, sr = _get(port, f"/results/{sr_uid}.dcm")
    assert status == 200 and headers["content-type"] == "application/dicom"
    assert pydicom.dcmread(io.BytesIO(sr)).SOPInstanceUID == sr_uid
    assert _get(port, "/results/1.2.3.dcm")[0] == 404
    assert _get(port, "/results/..%2Fstate.db.dcm")[0] in (404, 422)
    assert _get(port, "/studies/not-a-uid")[0] == 422
    assert _get(port, "/studies/1.2.3")[0] == 404

    # one audit row per page that showed identifiers, none for pages without
    viewed = node.query(
        "select subject, detail from audit_events where kind = 'web.identifiers_viewed'"
    )
    assert (mr_study, "local operator (open): study page") in viewed
    assert any(d.startswith("local operator (open): downloaded result") for _, d in viewed)
    count = len(viewed)
    assert _get(port, "/queue")[0] == 200 and _get(port, "/audit?kind=job.&text=refused")[0] == 200
    assert found(accession="nothing") == []  # an empty list shows no identifiers
    now = node.query("select count(*) from audit_events where kind = 'web.identifiers_viewed'")
    assert now[0][0] == count
    assert "TEST^" not in node.log_text() and "ACC-CT" not in node.log_text()

    # actions: a browser needs its session's CSRF token; a tool without Origin does not
    status, headers, _ = _get(port, "/queue")
    cookie = headers["set-cookie"].split(";")[0]
    csrf = re.search(
        r'name="csrf_token" value="([^"]+)"', _get(port, "/queue", {"Cookie": cookie})[2].decode()
    ).group(1)
    origin = {"Origin": f"http://127.0.0.1:{port}", "Cookie": cookie}
    refused_job = node.query("select id from jobs where state = 'refused'")[0][0]
    path = f"/queue/jobs/{refused_job}/retry"
    assert _request(port, "POST", path, origin, "next=/queue")[0] == 403
    foreign = {**origin, "Origin": "http://evil.example"}
    assert _request(port, "POST", path, foreign, f"csrf_token={csrf}")[0] == 403
    status, headers, _ = _request(
        port, "POST", path, origin, urlencode({"csrf_token": csrf, "next": "/queue?x=1"})
    )
    assert status == 303 and headers["location"].startswith("/queue?x=1&msg=")
    assert "queued" in headers["location"]
    status, headers, _ = _request(port, "POST", "/queue/jobs/999/cancel", body="next=//evil")
    assert status == 303 and headers["location"].startswith("/queue?msg=not+done")
    actions = node.query("select detail from audit_events where kind = 'web.action'")
    assert any(f"retry job {refused_job}" in d and "local operator" in d for (d,) in actions)
    assert any("cancel job 999: not done: no job 999" in d for (d,) in actions)


def test_cancel_only_waiting_jobs(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with db.session() as session:
            for state in (JobState.QUEUED, JobState.RUNNING, JobState.FAILED):
                session.add(job_row(state, state.value))
        assert cancel(db, 1, by="Dr A") == "job 1 cancelled"
        assert cancel(db, "3", by="Dr A") == "job 3 cancelled"
        with pytest.raises(JobError, match="job 2 is running"):
            cancel(db, 2, by="Dr A")
        with pytest.raises(JobError, match="job 1 is dead"):
            cancel(db, 1, by="Dr A")
        with pytest.raises(NoSuchJob):
            cancel(db, 4, by="Dr A")
        with db.session() as session:
            job = session.get(Job, 1)
            assert job is not None and job.state is JobState.DEAD
            assert job.error == "cancelled by Dr A"
    finally:
        db.dispose()


def test_outcomes_and_no_route_words():
    assert outcome_of([JobState.DEAD, JobState.SUCCEEDED], True) is Outcome.ANALYSED
    assert outcome_of([JobState.REFUSED, JobState.FAILED], False) is Outcome.FAILED
    assert outcome_of([JobState.REFUSED], False) is Outcome.REFUSED
    assert outcome_of([JobState.QUEUED], True) is Outcome.IN_PROGRESS
    assert outcome_of([], True) is Outcome.NO_ROUTE
    assert outcome_of([], False) is Outcome.WAITING
    words = _no_route_words("ct: Modality: expected 'CT', got 'MR'; mr-flair: SeriesDescription: x")
    assert [(d.route, d.words) for d in words] == [
        ("ct", "no route matched: no: Modality: expected 'CT', got 'MR'"),
        ("mr-flair", "no route matched: no: SeriesDescription: x"),
    ]
    assert [d.words for d in _no_route_words("no routes configured")] == [
        "no route matched: no routes configured"
    ]
    with pytest.raises(ValueError, match="limit must be from 1 to 500"):
        StudyFilter(limit=0)
    assert quote("1.2.3") == "1.2.3"

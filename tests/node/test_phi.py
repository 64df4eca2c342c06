"""No patient identifiers leave the node: a study with canary identifiers goes through every
path (stored, analysed, exported, refused, failed, delivery errors) and none of its canaries
shows in the log, the metrics, the HTTP API, the database's state and audit rows, the CLI's
output or the error texts of jobs and deliveries."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from testkit import dicomgen
from testkit.nodeproc import NodeProcess, free_port, storescu, toy_export_config
from testkit.scu import send_raw, write_as_is
from testkit.seriesgen import write_series
from tests.export.peers import Storescp

NAME = "ZQXFAMILY^ZQXGIVEN^ZQXMIDDLE"
PATIENT_ID = "ZQX-PID-90817"
OTHER_ID = "ZQX-OTHER-5521"
BIRTH_DATE = "19020304"
ACCESSION = "ZQXACC7788"

#: Every form a careless message could quote; searched case-insensitively.
CANARIES = (
    NAME,
    NAME.replace("^", " "),
    "ZQXFAMILY",
    "ZQXGIVEN",
    "ZQXMIDDLE",
    PATIENT_ID,
    OTHER_ID,
    BIRTH_DATE,
    "1902-03-04",
    ACCESSION,
)


def _patient(ds: Dataset) -> Dataset:
    ds.PatientName = NAME
    ds.PatientID = PATIENT_ID
    ds.OtherPatientIDs = OTHER_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.AccessionNumber = ACCESSION
    return ds


def _write(spec: dicomgen.SeriesSpec, directory: Path, description: str, value: int) -> list[Path]:
    """The series as the job tests write it, with the canary patient."""
    paths = write_series(spec, directory, description=description, value=value)
    for path in paths:
        _patient(dcmread(path)).save_as(path, enforce_file_format=True)
    return paths


def _bad_instances(spec: dicomgen.SeriesSpec, directory: Path) -> list[Path]:
    """Instances of the same patient the node must refuse: a dataset SOP Instance UID other
    than the command's (0xA900) and a truncated dataset (0xC000 family)."""
    directory.mkdir(parents=True, exist_ok=True)
    mismatch = _patient(dicomgen.instance(spec, 7))
    mismatch.file_meta.MediaStorageSOPInstanceUID = dicomgen.uid("phi", "other instance")
    first = write_as_is(mismatch, directory / "mismatch.dcm")
    whole = write_as_is(_patient(dicomgen.instance(spec, 8)), directory / "whole.dcm")
    truncated = directory / "truncated.dcm"
    truncated.write_bytes(whole.read_bytes()[:-700])
    return [first, truncated]


def _config(pacs_port: int, down_port: int) -> dict:
    config = toy_export_config(pacs_port, down_port)
    config["workers"]["max_attempts"] = 2
    return {"logging": {"level": "DEBUG"}, **config}


def _get(node: NodeProcess, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}{path}", timeout=30) as r:
            return f"{r.status}\n{r.read().decode()}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code}\n{exc.read().decode()}"


def _settled(node: NodeProcess) -> bool:
    jobs = node.query("select state from jobs")
    deliveries = node.query("select destination, state from deliveries")
    return (
        sorted(s for (s,) in jobs) == ["dead", "refused", "succeeded"]
        and len(deliveries) == 6
        and all(s == ("delivered" if d == "pacs" else "dead") for d, s in deliveries)
    )


def _wait(node: NodeProcess, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not _settled(node):
        if time.monotonic() > deadline:
            jobs = node.query("select id, state, error from jobs")
            deliveries = node.query("select destination, state, attempts from deliveries")
            pytest.fail(f"node did not settle: jobs {jobs}, deliveries {deliveries}")
        time.sleep(0.3)


def _database_dump(path: Path) -> str:
    """Every row of every table (SQL text), the audit trail and error columns included."""
    with sqlite3.connect(path, timeout=30) as conn:
        return "\n".join(conn.iterdump())


def test_canary_identifiers_appear_nowhere(node_factory, tmp_path):
    pacs = Storescp(tmp_path / "pacs").start()
    try:
        node = node_factory(**_config(pacs.port, free_port())).start()
        good, leak, refuse = dicomgen.study("phi-canary", [3, 3, 3])
        sent = {
            "good": _write(good, tmp_path / "good", "PHI good", 5),
            "leak": _write(leak, tmp_path / "leak", "PHI TOY:leak", 5),
            "refuse": _write(refuse, tmp_path / "refuse", "PHI TOY:phi-refusal", 5),
        }
        for files in sent.values():
            out = storescu(node.port, files)
            assert out.returncode == 0, out.stdout + out.stderr
        statuses = send_raw(node.port, _bad_instances(good, tmp_path))
        assert statuses[0] == 0xA900 and statuses[1] is not None and statuses[1] >= 0xA000
        _wait(node)
        (leak_error,) = node.query("select error from jobs where state = 'dead'")[0]
        assert "cannot process patient [redacted]" in leak_error  # the failure is still told
        assert leak.series_uid in leak_error  # UIDs are kept
        (refusal,) = node.query("select error from jobs where state = 'refused'")[0]
        assert "refused for patient [redacted]" in refusal

        texts = {"log": node.log_text(), "database": _database_dump(node.db_path)}
        for path in (
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/studies",
            "/api/jobs",
            "/api/jobs?state=dead",
            "/api/jobs?state=refused",
            "/api/deliveries",
            "/api/deliveries?state=dead",
            "/",
        ):
            texts[f"GET {path}"] = _get(node, path)
        for args in (
            ("status",),
            ("status", "--json"),
            ("status", "--audit", "1000"),
            ("jobs",),
            ("jobs", "--json"),
            ("jobs", "--state", "dead"),
            ("jobs", "--state", "refused"),
            ("route", "explain", str(tmp_path / "leak"), "--json"),
            ("route", "explain", str(tmp_path / "refuse")),
            ("check",),
        ):
            out = node.cli(*args)
            texts["dicomnode " + " ".join(args[:2])] = f"{out.returncode}\n{out.stdout}{out.stderr}"
        node.stop()
        texts["log"] = node.log_text()  # shutdown lines too
    finally:
        pacs.stop()

    assert "job" in texts["log"] and "delivery" in texts["log"]  # it did log the work
    assert json.loads(texts["GET /api/jobs"].split("\n", 1)[1])  # non-empty answers
    leaks = [
        f"{canary!r} in {where}"
        for where, text in texts.items()
        for canary in CANARIES
        if canary.casefold() in text.casefold()
    ]
    assert leaks == []

"""``bench/e2e.py``'s signal mode splits a job's timeline as the node records it.

The full mode (Orthanc sending with Storage Commitment, a node, the toy pipeline) takes about
30 s on the shared 2-core machine: it is run by hand (``python bench/e2e.py --signal
commitment --pipelines toy``); this checks its arithmetic on a timeline as ``job_stages`` holds
it (a failed first attempt included).
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_e2e", ROOT / "bench" / "e2e.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_e2e"] = module
    spec.loader.exec_module(module)
    return module


def test_signal_timing_splits_the_latest_attempt_of_the_timeline(tmp_path):
    e2e = _bench()
    base = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    rows = [  # (stage, seconds after the last instance, attempt, detail)
        ("received", 0.0, 0, None),
        ("completed", 0.2, 0, "commitment"),
        ("queued", 0.25, 0, None),
        ("started", 0.3, 1, "w"),  # the first attempt failed
        ("model_ready", 3.0, 1, None),
        ("started", 9.0, 2, "w"),
        ("model_ready", 9.1, 2, None),
        ("inference_done", 14.1, 2, None),
        ("written", 14.6, 2, None),
        ("delivered", 14.7, 2, "pacs"),
        ("delivered", 14.9, 2, "pacs"),
    ]
    db = tmp_path / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "create table job_stages (id integer primary key, job_id, stage, at, attempt, detail)"
        )
        for stage, seconds, attempt, detail in rows:
            at = (base + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat(sep=" ")
            conn.execute(
                "insert into job_stages (job_id, stage, at, attempt, detail) "
                "values (7, ?, ?, ?, ?)",
                (stage, at, attempt, detail),
            )
    at, signal = e2e._stages(db, 7)
    assert signal == "commitment"
    assert round(at["started"] - at["received"], 6) == 9.0  # the latest attempt's
    arrived = at["received"] + 14.8
    timing = e2e.SignalTiming("ct", "toy", signal, at, arrived, 60.0)
    assert round(timing.seconds("inference"), 3) == 5.0
    assert round(timing.seconds("load"), 3) == 0.1
    assert round(timing.seconds("export"), 3) == 0.2
    assert round(timing.seconds("total"), 3) == 14.8
    assert round(timing.seconds("overhead"), 3) == 9.8
    assert round(timing.seconds("x_timer"), 3) == round((60 + 14.8 - 0.2) / 14.8, 3)
    header, line = e2e.render_signal([timing]).splitlines()
    values = dict(zip(header.split(), line.split(), strict=True))
    assert (
        values["signal"] == "commitment" and values["x_timer"] == f"{timing.seconds('x_timer'):.2f}"
    )
    parts = ("waited", "route", "queue", "load", "inference", "write", "export")
    assert abs(sum(float(values[p]) for p in parts) - float(values["total"])) < 0.05


def test_priors_span_reads_the_audit_rows_of_the_study(tmp_path):
    e2e = _bench()
    db = tmp_path / "state.db"
    base = datetime(2026, 1, 1, 12, 0, 0)
    rows = [  # (kind, subject, seconds, detail)
        ("priors.requested", "other", 0.0, "route ct"),
        ("priors.failed", "other", 0.1, "no association"),
        ("priors.requested", "current", 5.0, "route ct"),
        ("priors.found", "current", 5.05, "1 earlier studies"),
        ("priors.retrieved", "prior", 5.35, "series 1.2: C-MOVE 20 instances"),
    ]
    with sqlite3.connect(db) as conn:
        conn.execute(
            "create table audit_events (id integer primary key, kind, subject, at, detail)"
        )
        for kind, subject, seconds, detail in rows:
            at = (base + timedelta(seconds=seconds)).isoformat(sep=" ")
            conn.execute(
                "insert into audit_events (kind, subject, at, detail) values (?, ?, ?, ?)",
                (kind, subject, at, detail),
            )
    assert e2e.priors_span(db, "current") == "0.350 s (series 1.2: C-MOVE 20 instances)"
    assert e2e.priors_span(db, "nothing") == "no priors requested"

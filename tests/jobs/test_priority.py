"""Job priority: routes set it, the claim serves stat before high before routine, then age."""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta

import pytest
from sqlalchemy import event, insert

from dicomnode.errors import ConfigError
from dicomnode.jobs import Job, JobState, claim
from dicomnode.jobs.report import job_rows, render_jobs
from dicomnode.routing import Priority, compile_routes
from dicomnode.store.ingest import Store
from dicomnode.store.models import utcnow
from testkit.nodeproc import TOY_PIPELINE, storescu, wait_for
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest, job_row


def _row(name: str, priority: Priority, age_s: float, state: JobState) -> dict[str, object]:
    run_after = utcnow() - timedelta(seconds=age_s)
    return job_row(name, state=state, run_after=run_after, priority=priority)


def _add(db, name: str, priority: Priority, age_s: float, state=JobState.QUEUED) -> None:
    with db.session() as session:
        session.execute(insert(Job), [_row(name, priority, age_s, state)])


def test_claim_serves_by_priority_then_age(database):
    _add(database, "routine-old", Priority.ROUTINE, 300)
    _add(database, "routine-new", Priority.ROUTINE, 200)
    _add(database, "high", Priority.HIGH, 50)
    _add(database, "stat-retry", Priority.STAT, -600, JobState.FAILED)  # backoff not over
    _add(database, "stat", Priority.STAT, 10)
    _add(database, "stat-done", Priority.STAT, 900, JobState.SUCCEEDED)
    order = []
    while (job := claim(database, "w", lease_seconds=60)) is not None:
        order.append((job.route, job.priority))
    assert order == [
        ("stat", Priority.STAT),
        ("high", Priority.HIGH),
        ("routine-old", Priority.ROUTINE),
        ("routine-new", Priority.ROUTINE),
    ]


def test_claim_walks_the_partial_index_in_order(database):
    """The claim's query is answered from ``ix_jobs_claim`` (no sort of the jobs table), with
    the planner's statistics of a node that has a history of finished jobs."""
    history = [
        _row(f"done-{i}", Priority(list(Priority)[i % 3]), 100 + i, JobState.SUCCEEDED)
        for i in range(2000)
    ]
    with database.session() as session:
        session.execute(insert(Job), history)
    _add(database, "waiting", Priority.HIGH, 5)
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT") and "FROM jobs" in statement:
            seen.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", capture)
    try:
        assert claim(database, "w", lease_seconds=60) is not None
    finally:
        event.remove(database.engine, "before_cursor_execute", capture)
    statement, parameters = seen[0]
    with database.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        if database.is_sqlite:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            plan = " ".join(str(row[-1]) for row in rows)
            assert "ix_jobs_claim" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # the index gives the order
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
            plan = " ".join(str(row[0]) for row in rows)
            assert "ix_jobs_claim" in plan, plan


def test_route_priority_reaches_the_job_and_the_listing(tmp_path):
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        routes=[
            {
                "name": "ct-stat",
                "pipeline": "toy",
                "when": {"Modality": "CT"},
                "send_to": ["pacs"],
                "priority": "stat",
            }
        ],
    )
    from dicomnode.store.db import open_database

    db = open_database(cfg.database_url)
    try:
        (spec,) = specs("prio", 1)
        ingest(Store(cfg.store_path, db, min_free=0), write_series(spec, tmp_path / "s"))
        complete_all(db, cfg)
        (row,) = job_rows(db)
        assert row["priority"] == "stat"
        header, line = render_jobs([row]).splitlines()
        assert header.split()[9] == "PRIO" and line.split()[9] == "stat"
    finally:
        db.dispose()


def test_priority_defaults_to_routine_and_rejects_unknown_words():
    (route,) = compile_routes([{"name": "r", "pipeline": "p", "send_to": ["x"]}])
    assert route.priority is Priority.ROUTINE
    with pytest.raises(ConfigError) as err:
        compile_routes([{"name": "r", "pipeline": "p", "send_to": ["x"], "priority": "urgent"}])
    assert "priority" in str(err.value) and "stat" in str(err.value)


def _metrics(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_stat_job_runs_next_on_a_busy_node(node_factory, tmp_path):
    """One worker busy with a routine job; two routine jobs, then a stat one, are queued:
    the stat job is the next to run, then the routine ones."""
    runlog = tmp_path / "runs.log"
    routes = [
        {
            "name": "ct-routine",
            "pipeline": "toy",
            "when": {"SeriesDescription": {"regex": "routine"}},
        },
        {
            "name": "ct-stat",
            "pipeline": "toy",
            "when": {"SeriesDescription": {"regex": "stat"}},
            "priority": "stat",
        },
    ]
    node = node_factory(
        workers={"count": 1, "device": "cpu", "poll_seconds": 0.2, "lease_seconds": 30},
        stability={"series_seconds": 0.5, "study_seconds": 60},
        pipelines={"toy": {"class": TOY_PIPELINE, "runlog": str(runlog)}},
        routes=[{**route, "send_to": [], "shadow": True} for route in routes],
    ).start()
    busy, first, second, urgent = specs("busy", 4)
    files = {
        "busy": write_series(busy, tmp_path / "busy", description="routine TOY:sleep=5"),
        "first": write_series(first, tmp_path / "first", description="routine first"),
        "second": write_series(second, tmp_path / "second", description="routine second"),
        "urgent": write_series(urgent, tmp_path / "urgent", description="stat urgent"),
    }
    assert storescu(node.port, files["busy"]).returncode == 0
    wait_for(lambda: runlog.exists() and busy.series_uid in runlog.read_text(), "busy job")
    assert storescu(node.port, files["first"] + files["second"]).returncode == 0
    wait_for(lambda: len(node.query("select id from jobs")) == 3, "routine jobs queued")
    assert storescu(node.port, files["urgent"]).returncode == 0
    wait_for(lambda: len(node.query("select id from jobs")) == 4, "stat job queued")
    assert f"end {busy.series_uid}" not in runlog.read_text(), "the busy job ended too soon"
    assert 'dicomnode_jobs_waiting{priority="stat"} 1.0' in _metrics(node.http_port)
    assert 'dicomnode_jobs_waiting{priority="routine"} 2.0' in _metrics(node.http_port)
    wait_for(
        lambda: len(node.query("select id from jobs where state = 'succeeded'")) == 4,
        "all jobs",
        timeout=60,
    )
    starts = [line.split()[1] for line in runlog.read_text().splitlines() if line[:5] == "start"]
    assert starts[:2] == [busy.series_uid, urgent.series_uid]
    assert set(starts[2:]) == {first.series_uid, second.series_uid}
    shown = json.loads(node.cli("jobs", "--json").stdout)
    assert {row["route"]: row["priority"] for row in shown} == {
        "ct-routine": "routine",
        "ct-stat": "stat",
    }
    url = f"http://127.0.0.1:{node.http_port}/api/jobs"
    with urllib.request.urlopen(url, timeout=10) as response:
        served = json.load(response)
    assert sorted(row["priority"] for row in served) == ["routine"] * 3 + ["stat"]

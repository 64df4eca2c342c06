"""Three ``dicomnode worker`` processes on one PostgreSQL 15 database, 200 jobs.

Every job runs to completion exactly once; the worker holding a slow job is killed with
SIGKILL mid-run, and another worker finishes that job after its lease expired.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import yaml
from sqlalchemy import func, select

from dicomnode.demo.processes import stop_process
from dicomnode.jobs import Job, JobResult, JobState
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from testkit.pg import fresh_database
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest

N = 200


def test_three_workers_run_200_jobs_once_and_recover_a_killed_worker(postgres_url, tmp_path):
    url = fresh_database(postgres_url, "workers200")
    runlog = tmp_path / "runs.log"
    sections = {
        "workers": {"count": 1, "lease_seconds": 2, "heartbeat_seconds": 0.3, "poll_seconds": 0.05},
        "pipelines": {"toy": {"class": "testkit.toy_pipeline:ToyPipeline", "runlog": str(runlog)}},
        "routes": [
            {"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "shadow": True}
        ],
        "logging": {"level": "WARNING"},
    }
    cfg = config(tmp_path, url, **sections)
    db = open_database(url)
    store = Store(cfg.store_path, db, min_free=0)
    series = specs("pg", N, count=1, rows=8)
    slow = series[0]
    for i, spec in enumerate(series):
        description = "slow TOY:sleep=4" if spec is slow else None
        ingest(store, write_series(spec, tmp_path / "in" / str(i), description=description))
    complete_all(db, cfg)
    with db.session() as session:
        assert session.scalar(select(func.count(Job.id))) == N
    path = tmp_path / "worker.yaml"
    data = cfg.model_dump(mode="json", by_alias=True, exclude_none=True)
    path.write_text(yaml.safe_dump(data))
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "dicomnode.cli", "worker", "-c", str(path)],
            stdout=open(tmp_path / f"worker{i}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        for i in range(3)
    ]
    started = time.monotonic()
    try:
        victim = _wait_running(db, slow.series_uid, runlog)
        pids = {w.pid: w for w in workers}
        assert victim in pids, (victim, list(pids))
        os.kill(victim, signal.SIGKILL)
        pids[victim].wait()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with db.session() as session:
                done = session.scalar(
                    select(func.count(Job.id)).where(Job.state == JobState.SUCCEEDED)
                )
            if done == N:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            stop_process(w, grace=20)
    with db.session() as session:
        states = collections.Counter(s.value for s in session.scalars(select(Job.state)))
        attempts = dict(session.execute(select(Job.subject, Job.attempts)).all())
        results = session.scalar(select(func.count(JobResult.id)))
        owners = session.scalars(select(func.count(func.distinct(JobResult.job_id)))).one()
    db.dispose()
    assert states == {"succeeded": N}, states
    lines = [line.split() for line in runlog.read_text().splitlines()]
    ends = collections.Counter(uid for word, uid, _ in lines if word == "end")
    starts = collections.Counter(uid for word, uid, _ in lines if word == "start")
    assert set(ends.values()) == {1} and len(ends) == N  # every job finished exactly once
    assert starts[slow.series_uid] == 2 and attempts[slow.series_uid] == 2
    assert all(starts[s.series_uid] == 1 for s in series[1:])
    assert all(attempts[s.series_uid] == 1 for s in series[1:])
    assert owners == N and results == 2 * N  # SR + summary (empty mask: no SEG)
    print(
        f"\n{N} jobs on PostgreSQL with 3 workers (one killed): {elapsed:.1f} s, "
        f"{N / elapsed:.1f} jobs/s"
    )


def _wait_running(db, series_uid: str, runlog) -> int:
    """The pid of the worker whose child has started the pipeline on ``series_uid``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not (runlog.exists() and f"start {series_uid}" in runlog.read_text()):
            time.sleep(0.05)
            continue
        with db.session() as session:
            job = session.scalar(select(Job).where(Job.subject == series_uid))
        if job is not None and job.state is JobState.RUNNING and job.lease_owner:
            return int(job.lease_owner.split(":")[1])
        time.sleep(0.05)
    raise AssertionError("the slow job never ran")

"""Header quirks through the worker: repaired and recorded, or a permanent failure (no retry)."""

from __future__ import annotations

import threading
import time

import pydicom
from sqlalchemy import select, text

from dicomnode.jobs import Job, JobResult, JobState, Worker, results_root
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest


def _settled(db, count: int, timeout: float = 120.0) -> list[Job]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            jobs = list(session.scalars(select(Job).order_by(Job.id)))
        if len(jobs) == count and all(
            j.state in (JobState.SUCCEEDED, JobState.DEAD, JobState.REFUSED) for j in jobs
        ):
            return jobs
        time.sleep(0.1)
    raise AssertionError(f"timed out; jobs: {[(j.id, j.state, j.error) for j in jobs]}")


def test_quirks_are_repaired_and_recorded_and_unencodable_findings_fail_once(tmp_path):
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        workers={"max_attempts": 3},
        pipelines={"toy": {"class": "testkit.toy_pipeline:ToyPipeline", "threshold": 1}},
    )
    db = open_database(cfg.database_url)
    store = Store(cfg.store_path, db, min_free=0)
    quirky, broken = specs("quirks", 2)
    paths = write_series(quirky, tmp_path / "q", value=5)
    for path in paths:  # as real scanner exports have it
        ds = pydicom.dcmread(path)
        ds.PatientSex = "0000"
        ds.save_as(path)
    ingest(store, paths)
    ingest(store, write_series(broken, tmp_path / "b", value=5, description="TOY:unencodable"))
    complete_all(db, cfg)
    stop = threading.Event()
    worker = Worker(db, cfg, 0, stop)
    worker.start()
    try:
        jobs = _settled(db, 2)
    finally:
        stop.set()
        worker.join(15)
    by_subject = {j.subject: j for j in jobs}
    good, bad = by_subject[quirky.series_uid], by_subject[broken.series_uid]
    assert good.state is JobState.SUCCEEDED
    with db.session() as session:
        results = list(session.scalars(select(JobResult).where(JobResult.job_id == good.id)))
        audit = session.execute(
            text("select kind, detail from audit_events where kind like 'job.%' order by id")
        ).all()
    assert len(results) == 3
    for row in results:
        assert pydicom.dcmread(results_root(cfg) / row.path).PatientSex in (None, "")
    assert ("job.sources_repaired", f"job {good.id}: source attributes repaired: PatientSex") in [
        tuple(r) for r in audit
    ]
    # An object that cannot be made from these findings is the input's fault: dead at once,
    # with the objects that could be made and the findings kept beside the job.
    assert bad.state is JobState.DEAD and bad.attempts == 1, (bad.state, bad.attempts)
    assert "cannot make seg" in (bad.error or "")
    kept = results_root(cfg) / str(bad.id)
    assert list(kept.glob("findings-*.json")) and list(kept.glob("*.dcm"))
    db.dispose()

"""A worker thread with its inference child: results, crashes, OOM, refusals, restarts."""

from __future__ import annotations

import threading
import time

import pydicom
import pytest
from sqlalchemy import select

from dicomnode.jobs import Delivery, Job, JobResult, JobState, Worker, results_root
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest


@pytest.fixture
def env(tmp_path):
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        workers={"max_attempts": 2},
        pipelines={"toy": {"class": "testkit.toy_pipeline:ToyPipeline", "threshold": 1}},
    )
    db = open_database(cfg.database_url)
    yield db, cfg, Store(cfg.store_path, db, min_free=0)
    db.dispose()


def _run_until(db, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            jobs = list(session.scalars(select(Job).order_by(Job.id)))
        if predicate(jobs):
            return jobs
        time.sleep(0.1)
    raise AssertionError(f"timed out; jobs: {[(j.id, j.state, j.error) for j in jobs]}")


def _done(jobs):
    return jobs and all(
        j.state in (JobState.SUCCEEDED, JobState.DEAD, JobState.REFUSED) for j in jobs
    )


def test_worker_runs_jobs_in_a_child_and_survives_crash_and_oom(env, tmp_path):
    db, cfg, store = env
    good, crash, oom, fine = specs("w", 4)
    ingest(store, write_series(good, tmp_path / "a", value=0))
    ingest(store, write_series(crash, tmp_path / "b", description="TOY:crash"))
    ingest(store, write_series(oom, tmp_path / "c", description="TOY:oom"))
    ingest(store, write_series(fine, tmp_path / "d", value=5))
    complete_all(db, cfg)
    stop = threading.Event()
    succeeded: list[int] = []
    worker = Worker(db, cfg, 0, stop, on_success=succeeded.append)
    worker.start()
    try:
        jobs = _run_until(db, _done)
    finally:
        stop.set()
        worker.join(15)
    by_subject = {j.subject: j for j in jobs}
    assert by_subject[good.series_uid].state is JobState.SUCCEEDED
    assert by_subject[fine.series_uid].state is JobState.SUCCEEDED
    crashed = by_subject[crash.series_uid]
    assert crashed.state is JobState.DEAD and crashed.attempts == 2
    assert "inference process died (exit code 3)" in (crashed.error or "")
    oomed = by_subject[oom.series_uid]
    assert oomed.state is JobState.DEAD and "MemoryError" in (oomed.error or "")
    assert sorted(succeeded) == sorted(j.id for j in jobs if j.state is JobState.SUCCEEDED)
    with db.session() as session:
        results = list(session.scalars(select(JobResult).order_by(JobResult.id)))
        deliveries = list(session.scalars(select(Delivery)))
    # SEG (pixels above the threshold), SR and summary for each good series
    fine_results = [r for r in results if r.job_id == by_subject[fine.series_uid].id]
    good_results = [r for r in results if r.job_id == by_subject[good.series_uid].id]
    assert len(fine_results) == 3 and len(good_results) == 3  # value+index > 1 on 2nd slice on
    assert len(deliveries) == len(results)
    for row in results:
        ds = pydicom.dcmread(results_root(cfg) / row.path)
        assert ds.SOPInstanceUID == row.sop_instance_uid
        assert ds.StudyInstanceUID == row.study_uid
        assert "RESEARCH USE ONLY" in ds.SeriesDescription


def test_refusal_in_the_child_is_final_and_shadow_routes_deliver_nothing(tmp_path):
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        routes=[{"name": "quiet", "pipeline": "toy", "when": {"Modality": "CT"}, "shadow": True}],
    )
    db = open_database(cfg.database_url)
    store = Store(cfg.store_path, db, min_free=0)
    (a,) = specs("shadow", 1)
    ingest(store, write_series(a, tmp_path / "a"))
    complete_all(db, cfg)
    stop = threading.Event()
    worker = Worker(db, cfg, 0, stop)
    worker.start()
    try:
        (job,) = _run_until(db, _done)
    finally:
        stop.set()
        worker.join(15)
    assert job.state is JobState.SUCCEEDED
    with db.session() as session:
        assert session.scalar(select(JobResult.id)) is not None
        assert session.scalar(select(Delivery.id)) is None
    db.dispose()


def test_rerun_after_a_late_arrival_references_its_predecessor(env, tmp_path):
    db, cfg, store = env
    (spec,) = specs("rerun", 1, count=4)
    files = write_series(spec, tmp_path / "a", value=5)
    stop = threading.Event()
    worker = Worker(db, cfg, 0, stop)
    worker.start()
    try:
        ingest(store, files[:3])
        complete_all(db, cfg)
        _run_until(db, lambda jobs: _done(jobs) and len(jobs) == 1)
        ingest(store, files[3:])  # late arrival: the series re-opens and completes again
        complete_all(db, cfg)
        first, second = _run_until(db, lambda jobs: _done(jobs) and len(jobs) == 2)
    finally:
        stop.set()
        worker.join(15)
    assert second.predecessor_id == first.id
    with db.session() as session:
        rows = list(session.scalars(select(JobResult).order_by(JobResult.id)))
    old = {r.sop_class_uid: r for r in rows if r.job_id == first.id}
    new = {r.sop_class_uid: r for r in rows if r.job_id == second.id}
    assert set(old) == set(new) and not {r.sop_instance_uid for r in old.values()} & {
        r.sop_instance_uid for r in new.values()
    }
    sr_class = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    sr = pydicom.dcmread(results_root(cfg) / new[sr_class].path)
    referenced = {
        item.ReferencedSOPInstanceUID
        for study in sr.PredecessorDocumentsSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert referenced == {old[sr_class].sop_instance_uid}


def test_stopping_a_worker_hands_its_running_job_back(env, tmp_path):
    db, cfg, store = env
    (spec,) = specs("stop", 1)
    ingest(store, write_series(spec, tmp_path / "a", description="TOY:sleep=30"))
    complete_all(db, cfg)
    stop = threading.Event()
    worker = Worker(db, cfg, 0, stop)
    worker.start()
    try:
        _run_until(db, lambda jobs: jobs[0].state is JobState.RUNNING)
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(15)
    assert not worker.is_alive()
    with db.session() as session:
        (job,) = session.scalars(select(Job))
    assert job.state is JobState.QUEUED and job.attempts == 0 and job.lease_owner is None


def test_a_job_past_its_timeout_is_stopped_and_counts_as_failed(tmp_path):
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        # 3 s: the fine job (read, run, encode three objects) took over 1 s on a loaded 2-core CI
        workers={"job_timeout": 3, "max_attempts": 1},
    )
    db = open_database(cfg.database_url)
    store = Store(cfg.store_path, db, min_free=0)
    slow, fine = specs("timeout", 2)
    ingest(store, write_series(slow, tmp_path / "a", description="TOY:sleep=60"))
    ingest(store, write_series(fine, tmp_path / "b"))
    complete_all(db, cfg)
    stop = threading.Event()
    worker = Worker(db, cfg, 0, stop)
    worker.start()
    try:
        jobs = _run_until(db, lambda jobs: _done(jobs), timeout=30)
    finally:
        stop.set()
        worker.join(15)
    by_subject = {j.subject: j for j in jobs}
    assert by_subject[slow.series_uid].state is JobState.DEAD
    assert by_subject[slow.series_uid].error == "timed out after 3 s"
    assert by_subject[fine.series_uid].state is JobState.SUCCEEDED
    db.dispose()

"""The queue on SQLite and PostgreSQL: queueing on completion, idempotency, leases, retries."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from dicomnode.jobs import (
    Backoff,
    Delivery,
    Job,
    JobError,
    JobResult,
    JobState,
    NoSuchJob,
    ResultRecord,
    claim,
    fail,
    heartbeat,
    reap_expired,
    retry,
    succeed,
)
from dicomnode.store.ingest import Store
from dicomnode.store.models import AuditEvent, utcnow
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest

NOW = Backoff(0, 0)


@pytest.fixture
def env(database, tmp_path):
    cfg = config(tmp_path, str(database.engine.url.render_as_string(hide_password=False)))
    store = Store(cfg.store_path, database, min_free=0)
    return database, cfg, store


def _jobs(db):
    with db.session() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def test_completion_queues_once_and_resend_makes_no_new_job(env, tmp_path):
    db, cfg, store = env
    ct, mr = specs("q", 2)
    mr = type(mr)(**{**mr.__dict__, "modality": "MR"})
    files = write_series(ct, tmp_path / "ct") + write_series(mr, tmp_path / "mr")
    ingest(store, files)
    complete_all(db, cfg)
    jobs = _jobs(db)
    assert [(j.route, j.subject, j.state) for j in jobs] == [
        ("ct-toy", ct.series_uid, JobState.QUEUED)
    ]
    assert json.loads(jobs[0].send_to) == ["pacs"]
    assert json.loads(jobs[0].outputs) == ["sr", "seg", "summary"]
    ingest(store, files[:2])  # identical re-send: duplicates, nothing re-opens
    complete_all(db, cfg)
    assert len(_jobs(db)) == 1


def test_changed_series_after_completion_reruns_with_predecessor(env, tmp_path):
    db, cfg, store = env
    (ct,) = specs("late", 1)
    files = write_series(ct, tmp_path / "ct")
    ingest(store, files[:2])
    complete_all(db, cfg)
    (first,) = _jobs(db)
    with db.session() as session:
        session.execute(update(Job).values(state=JobState.SUCCEEDED))
    ingest(store, files[2:])  # a late arrival re-opens the series
    complete_all(db, cfg)
    first, second = _jobs(db)
    assert second.digest != first.digest and second.predecessor_id == first.id
    assert second.state is JobState.QUEUED


def test_late_arrivals_ignore_queues_nothing_new(database, tmp_path):
    cfg = config(
        tmp_path,
        database.engine.url.render_as_string(hide_password=False),
        stability={"late_arrivals": "ignore"},
    )
    store = Store(cfg.store_path, database, min_free=0)
    (ct,) = specs("ignore", 1)
    files = write_series(ct, tmp_path / "ct")
    ingest(store, files[:2])
    complete_all(database, cfg)
    ingest(store, files[2:])
    complete_all(database, cfg)
    assert len(_jobs(database)) == 1


def test_refusal_by_check_is_a_refused_job_with_the_reason(env, tmp_path):
    db, cfg, store = env
    (ct,) = specs("refuse", 1)
    ingest(store, write_series(ct, tmp_path / "ct", description="TOY:refuse please"))
    complete_all(db, cfg)
    (job,) = _jobs(db)
    assert job.state is JobState.REFUSED
    assert "refused by toy: series asked to be refused" in (job.error or "")
    assert claim(db, "w", lease_seconds=5) is None


def test_failures_back_off_then_die_and_retry_requeues(env, tmp_path):
    db, cfg, store = env
    (ct,) = specs("fail", 1)
    ingest(store, write_series(ct, tmp_path / "ct"))
    complete_all(db, cfg)
    backoff = Backoff(60, 3600)
    job = claim(db, "w1", lease_seconds=5)
    assert job is not None and job.attempt == 1
    assert fail(db, job, "boom", backoff=backoff) is JobState.FAILED
    assert claim(db, "w1", lease_seconds=5) is None  # backing off
    for attempt in (2, 3):
        with db.session() as session:
            session.execute(update(Job).values(run_after=utcnow() - timedelta(seconds=1)))
        job = claim(db, "w1", lease_seconds=5)
        assert job is not None and job.attempt == attempt
        expected = JobState.FAILED if attempt < 3 else JobState.DEAD
        assert fail(db, job, f"boom {attempt}", backoff=backoff) is expected
    assert _jobs(db)[0].error == "boom 3"
    assert "queued" in retry(db, job.id, by="web: Dr Who")
    again = claim(db, "w2", lease_seconds=5)
    assert again is not None and again.attempt == 1
    with pytest.raises(JobError, match="running"):
        retry(db, job.id)
    with pytest.raises(NoSuchJob, match="no job"):
        retry(db, 999)
    with db.session() as session:
        kinds = session.scalars(
            select(AuditEvent.kind).where(AuditEvent.kind.like("job.%")).order_by(AuditEvent.id)
        ).all()
        subjects = set(
            session.scalars(select(AuditEvent.subject).where(AuditEvent.kind.like("job.%")))
        )
    assert kinds == [
        "job.queued",
        "job.started",
        "job.failed",
        "job.started",
        "job.failed",
        "job.started",
        "job.dead",
        "job.retried",
        "job.started",
    ]
    assert subjects == {ct.series_uid}
    with db.session() as session:
        retried = session.scalar(select(AuditEvent.detail).where(AuditEvent.kind == "job.retried"))
    assert retried == f"job {job.id}: dead; 0 dead deliveries queued again; by web: Dr Who"


def test_expired_lease_is_reaped_and_the_old_owner_is_fenced_out(env, tmp_path):
    db, cfg, store = env
    (ct,) = specs("lease", 1)
    ingest(store, write_series(ct, tmp_path / "ct"))
    complete_all(db, cfg)
    old = claim(db, "dead-worker", lease_seconds=0.01)
    assert old is not None
    assert claim(db, "other", lease_seconds=5) is None
    with db.session() as session:
        session.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert reap_expired(db, backoff=NOW) == [old.id]
    new = claim(db, "other", lease_seconds=5)
    assert new is not None and new.id == old.id and new.attempt == 2
    assert not heartbeat(db, old, lease_seconds=5)
    record = ResultRecord("1.2.3.4", "1.2.840.10008.5.1.4.1.1.88.34", "1.2.3", ct.study_uid, "x")
    assert not succeed(db, old, [record])
    assert heartbeat(db, new, lease_seconds=5)
    assert succeed(db, new, [record])
    assert succeed(db, new, [record]) is False  # no longer running: nothing twice
    with db.session() as session:
        assert session.scalar(select(JobResult.job_id)) == new.id
        deliveries = session.execute(select(Delivery.destination, Delivery.state)).all()
    assert [(d, s.value) for d, s in deliveries] == [("pacs", "pending")]
    assert _jobs(db)[0].state is JobState.SUCCEEDED


def test_each_job_is_claimed_by_exactly_one_of_many_claimers(env, tmp_path):
    import threading

    db, cfg, store = env
    for spec in specs("many", 12, count=1):
        ingest(store, write_series(spec, tmp_path / spec.series_uid))
    complete_all(db, cfg)
    claimed: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while (job := claim(db, name, lease_seconds=30)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(j.id for j in _jobs(db)) and len(claimed) == 12


def test_study_route_with_named_inputs_queues_one_job_with_roles(database, tmp_path):
    from dataclasses import replace

    from testkit.dicomgen import study

    cfg = config(
        tmp_path,
        database.engine.url.render_as_string(hide_password=False),
        routes=[
            {
                "name": "brain",
                "pipeline": "toy",
                "level": "study",
                "when": {"Modality": "MR"},
                "inputs": {
                    "t1": {"SeriesDescription": {"regex": "^t1"}},
                    "flair": {"SeriesDescription": {"regex": "flair"}},
                },
                "send_to": ["pacs"],
            }
        ],
    )
    store = Store(cfg.store_path, database, min_free=0)
    t1, flair, other = (replace(s, modality="MR") for s in study("brain", [2, 2, 2]))
    ingest(store, write_series(t1, tmp_path / "t1", description="t1 axial"))
    ingest(store, write_series(flair, tmp_path / "fl", description="ax FLAIR"))
    ingest(store, write_series(other, tmp_path / "dw", description="dwi"))
    result = complete_all(database, cfg)
    assert len(result.studies) == 1
    (job,) = _jobs(database)
    assert job.level == "study" and job.subject == t1.study_uid
    assert json.loads(job.inputs) == [
        {"series_uid": t1.series_uid, "role": "t1"},
        {"series_uid": flair.series_uid, "role": "flair"},
    ]


def test_deliveries_lease_back_off_die_and_revive(env, tmp_path):
    from dicomnode.export import Attempt, Verdict, claim_due
    from dicomnode.export import record as record_attempt
    from dicomnode.jobs import DeliveryState

    db, cfg, store = env
    (ct,) = specs("deliver", 1)
    ingest(store, write_series(ct, tmp_path / "ct"))
    complete_all(db, cfg)
    job = claim(db, "w", lease_seconds=5)
    assert job is not None
    records = [
        ResultRecord(f"1.2.3.{n}", "1.2.840.10008.5.1.4.1.1.7", "1.2.3", ct.study_uid, f"x/{n}")
        for n in (1, 2)
    ]
    assert succeed(db, job, records)
    due = claim_due(db, "exp", results=tmp_path, lease_seconds=60)
    assert [(d.destination, d.sop_instance_uid) for d in due] == [
        ("pacs", "1.2.3.1"),
        ("pacs", "1.2.3.2"),
    ]
    assert claim_due(db, "exp2", results=tmp_path, lease_seconds=60) == []  # leased
    slow = Backoff(60, 60)
    retry_later = Attempt(Verdict.RETRY, 0xA700, "status 0xA700")
    dead = Attempt(Verdict.DEAD, 0xC000, "status 0xC000")
    assert record_attempt(db, due[0], retry_later, owner="exp", max_attempts=5, backoff=slow) is (
        DeliveryState.PENDING
    )
    assert record_attempt(db, due[1], dead, owner="exp", max_attempts=5, backoff=slow) is (
        DeliveryState.DEAD
    )
    assert record_attempt(db, due[1], dead, owner="exp", max_attempts=5, backoff=slow) is None
    assert claim_due(db, "exp", results=tmp_path, lease_seconds=60) == []  # backing off
    assert "1 dead deliveries queued again" in retry(db, job.id)
    (again,) = claim_due(db, "exp", results=tmp_path, lease_seconds=60)
    assert again.sop_instance_uid == "1.2.3.2"
    delivered = Attempt(Verdict.DELIVERED, 0, "status 0x0000")
    assert record_attempt(db, again, delivered, owner="exp", max_attempts=5, backoff=slow) is (
        DeliveryState.DELIVERED
    )

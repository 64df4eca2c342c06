"""``retry`` on SQLite and PostgreSQL: job ids out of range, inputs that changed since a job
was queued, and the next attempt time of deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from dicomnode.export.expedite import send_now
from dicomnode.export.report import delivery_rows
from dicomnode.jobs import (
    MAX_JOB_ID,
    Backoff,
    InvalidJobId,
    Job,
    JobError,
    JobState,
    ResultRecord,
    checked_job_id,
    claim,
    instance_set_digest,
    retry,
    succeed,
)
from dicomnode.jobs.report import job_rows, render_jobs, until
from dicomnode.store.ingest import Store
from dicomnode.store.models import AuditEvent, Instance, utcnow
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest


def _url(database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def _jobs(db) -> list[Job]:
    with db.session() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def _dead(db, job_id: int) -> None:
    with db.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=JobState.DEAD))


def _digest_now(db) -> str:
    with db.session() as session:
        rows = session.execute(select(Instance.sop_instance_uid, Instance.sha256)).all()
    return instance_set_digest((uid, sha) for uid, sha in rows)


def test_ids_no_job_can_have_are_invalid_not_an_overflow(database):
    for bad in (0, -1, MAX_JOB_ID + 1, 10**19, 99999999999999999999):
        with pytest.raises(InvalidJobId, match="from 1 to 9223372036854775807"):
            retry(database, bad)
        with pytest.raises(InvalidJobId):
            retry(database, str(bad))


def test_id_strings_are_digits_only_and_the_largest_id_is_just_unknown(database):
    for text in ("", "12a", "+5", "1e5", "١٢", "9" * 5000):
        with pytest.raises(InvalidJobId):
            checked_job_id(text)
    assert len(str(InvalidJobId("9" * 5000))) < 100  # the message does not echo huge input
    assert checked_job_id("00042") == 42
    for unknown in (2**31 - 1, 2**31, MAX_JOB_ID):  # PostgreSQL's INTEGER ends at 2**31 - 1
        with pytest.raises(JobError, match=f"no job {unknown}$"):
            retry(database, str(unknown))


def test_retry_after_a_late_arrival_queues_a_new_job_for_the_current_instances(database, tmp_path):
    # late_arrivals: ignore, so nothing but the retry queues a job for the new instance set
    cfg = config(tmp_path, _url(database), stability={"late_arrivals": "ignore"})
    store = Store(cfg.store_path, database, min_free=0)
    (ct,) = specs("late", 1, count=4)
    files = write_series(ct, tmp_path / "ct")
    ingest(store, files[:2])
    complete_all(database, cfg)
    (first,) = _jobs(database)
    _dead(database, first.id)
    ingest(store, files[2:])  # two more instances: the series re-opens
    with pytest.raises(JobError, match="still receiving: nothing queued"):
        retry(database, first.id)
    complete_all(database, cfg)
    assert len(_jobs(database)) == 1  # ignore: no job for the late instances
    message = retry(database, first.id)
    assert "its input series changed since it was queued (4 instances now" in message
    assert "queued job 2 for the current instances (job 1 stays dead)" in message
    old, new = _jobs(database)
    assert old.state is JobState.DEAD and old.digest == first.digest  # history untouched
    assert new.state is JobState.QUEUED and new.digest == _digest_now(database)
    assert new.digest != old.digest and new.key != old.key
    assert (new.route, new.subject, new.inputs) == (old.route, old.subject, old.inputs)
    assert new.predecessor_id is None  # no earlier job succeeded
    with pytest.raises(JobError, match="job 2 \\(queued\\) covers the current instances"):
        retry(database, first.id)
    assert len(_jobs(database)) == 2
    assert "job 2 queued -> queued" in retry(database, new.id)  # unchanged inputs: as before
    with database.session() as session:
        kinds = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.kind.like("job.%")).order_by(AuditEvent.id)
        ).all()
    assert "job 2: route ct-toy; retry of job 1 with changed inputs" in kinds
    assert "job 1: inputs changed; job 2 queued for the current instances" in kinds


def test_retry_of_a_succeeded_job_after_a_superseding_instance_points_at_the_rerun(
    database, tmp_path
):
    cfg = config(tmp_path, _url(database))
    store = Store(cfg.store_path, database, min_free=0)
    (ct,) = specs("supersede", 1)
    ingest(store, write_series(ct, tmp_path / "ct"))
    complete_all(database, cfg)
    job = claim(database, "w", lease_seconds=5)
    assert job is not None and succeed(database, job, [])
    # the modality sends instance 0 again with other pixel values: same UID, new content
    ingest(store, write_series(ct, tmp_path / "ct2", value=7)[:1])
    complete_all(database, cfg)  # late_arrivals: rerun, so the sweep queued job 2 itself
    first, rerun = _jobs(database)
    assert rerun.predecessor_id == first.id and rerun.digest == _digest_now(database)
    with pytest.raises(JobError) as err:
        retry(database, first.id)
    text = str(err.value)
    assert text.startswith("job 1: its input series changed since it was queued (3 instances")
    assert text.endswith(
        "job 2 (queued) covers the current instances: nothing queued, retry job 2 instead"
    )
    assert "\n" not in text
    assert len(_jobs(database)) == 2


def test_retry_when_the_series_is_gone_says_so(database, tmp_path):
    cfg = config(tmp_path, _url(database))
    store = Store(cfg.store_path, database, min_free=0)
    (ct,) = specs("gone", 1)
    ingest(store, write_series(ct, tmp_path / "ct"))
    complete_all(database, cfg)
    (job,) = _jobs(database)
    with database.session() as session:
        session.execute(Instance.__table__.delete())
    with pytest.raises(JobError, match="no longer stored: nothing to run"):
        retry(database, job.id)


def test_next_attempt_shows_the_backoff_and_send_now_ends_it(database, tmp_path):
    from dicomnode.export import Attempt, Verdict, claim_due
    from dicomnode.export import record as record_attempt

    cfg = config(tmp_path, _url(database))
    store = Store(cfg.store_path, database, min_free=0)
    (ct,) = specs("next", 1)
    ingest(store, write_series(ct, tmp_path / "ct"))
    complete_all(database, cfg)
    job = claim(database, "w", lease_seconds=5)
    assert job is not None
    record = ResultRecord("1.2.3.9", "1.2.840.10008.5.1.4.1.1.7", "1.2.3", ct.study_uid, "x/9")
    assert succeed(database, job, [record])
    (row,) = job_rows(database)
    assert row["next_attempt_at"] is not None  # pending and due: now
    assert until(row["next_attempt_at"]) == "now"
    (due,) = claim_due(database, "exp", results=tmp_path, lease_seconds=60)
    assert job_rows(database)[0]["next_attempt_at"] is None  # sending: no next attempt
    down = Attempt(Verdict.RETRY, None, "association not established")
    before = utcnow()
    record_attempt(database, due, down, owner="exp", max_attempts=9, backoff=Backoff(600, 600))
    (row,) = job_rows(database)
    when = datetime.fromisoformat(row["next_attempt_at"])
    assert before + timedelta(seconds=599) <= when <= utcnow() + timedelta(seconds=600)
    (delivery,) = delivery_rows(database)
    assert delivery["next_attempt_at"] == row["next_attempt_at"]
    table = render_jobs(job_rows(database))
    header, line = table.splitlines()
    assert header.split()[7] == "NEXT"
    assert line.split()[7] in ("9m59s", "10m00s")
    assert send_now(database, destination="elsewhere") == 0
    assert send_now(database, destination="pacs", by="test") == 1
    assert until(job_rows(database)[0]["next_attempt_at"]) == "now"
    assert send_now(database) == 0  # already due: nothing to change
    assert claim_due(database, "exp", results=tmp_path, lease_seconds=60) != []
    with database.session() as session:
        audit = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.kind == "delivery.expedited")
        ).all()
    assert audit == ["1 pending deliveries to pacs sent now (test)"]

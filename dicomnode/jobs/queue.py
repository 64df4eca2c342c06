"""The durable job queue: claim with a lease, heartbeat, finish, fail with backoff, reap.

Claiming is ``SELECT … FOR UPDATE SKIP LOCKED`` then an UPDATE in one transaction: on
PostgreSQL many workers on many hosts never claim the same job; on SQLite every transaction
takes the write lock up front (``BEGIN IMMEDIATE``), which serialises claims in one process.
Every change of a running job is fenced by its lease owner: a worker whose lease expired (and
whose job another worker took) cannot finish or fail it any more.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dicomnode.jobs.audit import JobAuditKind, record_job
from dicomnode.jobs.models import CLAIMABLE, Delivery, DeliveryState, Job, JobResult, JobState
from dicomnode.jobs.timeline import Stage, StageMark, add_stages
from dicomnode.notify.schema import Event
from dicomnode.routing.schema import Priority
from dicomnode.store.db import Database
from dicomnode.store.models import utcnow

if TYPE_CHECKING:
    from dicomnode.notify.outbox import Outbox
    from dicomnode.notify.summary import FindingsSummary

__all__ = [
    "Backoff",
    "ClaimedJob",
    "ResultRecord",
    "claim",
    "fail",
    "heartbeat",
    "reap_expired",
    "release",
    "succeed",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base * 2**(attempt-1)``, at most ``cap`` seconds."""

    base: float
    cap: float

    def delay(self, attempt: int) -> timedelta:
        """Delay before the retry that follows failed attempt number ``attempt`` (1-based)."""
        seconds = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return timedelta(seconds=seconds)


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker holds the lease of."""

    id: int
    route: str
    pipeline: str
    study_uid: str
    subject: str
    inputs: list[dict[str, str | None]]
    outputs: list[str]
    send_to: list[str]
    shadow: bool
    attempt: int
    predecessor_id: int | None
    owner: str
    priority: Priority = Priority.ROUTINE


@dataclass(frozen=True)
class ResultRecord:
    """A result instance written by a job, as persisted in ``job_results``."""

    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    path: str


def claim(db: Database, owner: str, *, lease_seconds: float) -> ClaimedJob | None:
    """Take the most urgent due job (queued, or failed and past its backoff) with a lease.

    Strict priority, then age: a due ``stat`` job is taken before any ``high`` one, a
    ``high`` before any ``routine``; within a priority the earliest ``run_after``, then the
    lowest id. Running jobs are not preempted, so a stat job waits at most for the first
    worker to finish its current job. The walk follows the partial index ``ix_jobs_claim``.

    Returns
    -------
    ClaimedJob or None
        None when nothing is due.
    """
    now = utcnow()
    with db.session() as session:
        job = session.scalar(
            select(Job)
            .where(CLAIMABLE, Job.run_after <= now)
            .order_by(Job.priority, Job.run_after, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if job is None:
            return None
        job.state = JobState.RUNNING
        job.attempts += 1
        job.lease_owner = owner
        job.lease_expires_at = now + timedelta(seconds=lease_seconds)
        job.started_at = now
        job.updated_at = now
        record_job(
            session,
            JobAuditKind.JOB_STARTED,
            job_id=job.id,
            subject=job.subject,
            detail=f"attempt {job.attempts} by {owner}",
        )
        add_stages(session, job.id, [StageMark(Stage.STARTED, now, owner, job.attempts)])
        return ClaimedJob(
            id=job.id,
            route=job.route,
            pipeline=job.pipeline,
            study_uid=job.study_uid,
            subject=job.subject,
            inputs=json.loads(job.inputs),
            outputs=json.loads(job.outputs),
            send_to=json.loads(job.send_to),
            shadow=job.shadow,
            attempt=job.attempts,
            predecessor_id=job.predecessor_id,
            owner=owner,
            priority=Priority.from_rank(job.priority),
        )


def _running(job_id: int, owner: str) -> object:
    return (Job.id == job_id) & (Job.state == JobState.RUNNING) & (Job.lease_owner == owner)


def heartbeat(db: Database, job: ClaimedJob, *, lease_seconds: float) -> bool:
    """Extend the lease; False when it was lost (reaped, taken by another worker)."""
    now = utcnow()
    with db.session() as session:
        changed = session.execute(
            update(Job)
            .where(_running(job.id, job.owner))  # type: ignore[arg-type]
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        )
        return bool(changed.rowcount)  # type: ignore[attr-defined]


def succeed(
    db: Database,
    job: ClaimedJob,
    results: Sequence[ResultRecord],
    *,
    repaired: Sequence[str] = (),
    stages: Sequence[StageMark] = (),
    findings: FindingsSummary | None = None,
    notify: Outbox | None = None,
) -> bool:
    """Persist the results and one pending delivery per (result, destination); finish the job.

    Result UIDs are unique: a result already recorded (by an earlier attempt whose
    completion was lost) is reused, never duplicated. Returns False when the lease was lost.
    ``repaired`` names the source attributes the sanitizer changed for the results: they go
    in the job's audit trail (keywords only). ``stages`` are the run's timeline stages
    measured in the inference child (model ready, inference done); the ``written`` stage is
    this transaction's. ``findings`` is kept as the job's summary; ``notify`` puts the
    ``job.succeeded`` (and ``findings``) notifications in the outbox, in the same transaction.
    """
    now = utcnow()
    with db.session() as session:
        changed = session.execute(
            update(Job)
            .where(_running(job.id, job.owner))  # type: ignore[arg-type]
            .values(
                state=JobState.SUCCEEDED,
                lease_owner=None,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
                error=None,
                findings=json.dumps(findings.as_json()) if findings is not None else None,
            )
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            log.warning("lease lost before completion; results dropped", extra={"job": job.id})
            return False
        record_job(
            session,
            JobAuditKind.JOB_SUCCEEDED,
            job_id=job.id,
            subject=job.subject,
            detail=f"{len(results)} result(s)",
        )
        add_stages(session, job.id, [*stages, StageMark(Stage.WRITTEN, now, None, job.attempt)])
        if repaired:
            record_job(
                session,
                JobAuditKind.JOB_SOURCES_REPAIRED,
                job_id=job.id,
                subject=job.subject,
                detail="source attributes repaired: " + ", ".join(repaired),
            )
        destinations = [] if job.shadow else job.send_to
        for item in results:
            row = session.scalar(
                select(JobResult).where(JobResult.sop_instance_uid == item.sop_instance_uid)
            )
            if row is None:
                row = JobResult(
                    job_id=job.id,
                    sop_instance_uid=item.sop_instance_uid,
                    sop_class_uid=item.sop_class_uid,
                    series_uid=item.series_uid,
                    study_uid=item.study_uid,
                    path=item.path,
                    created_at=now,
                )
                session.add(row)
                session.flush()
            _add_deliveries(session, row, job.id, destinations, now)
        if notify is not None:
            session.flush()
            notify.job_event(session, Event.JOB_SUCCEEDED, job.id, findings=findings)
    return True


def _add_deliveries(
    session: Session, row: JobResult, job_id: int, destinations: Sequence[str], now: datetime
) -> None:
    known = set(
        session.scalars(select(Delivery.destination).where(Delivery.result_id == row.id)).all()
    )
    for name in destinations:
        if name not in known:
            session.add(
                Delivery(
                    result_id=row.id,
                    job_id=job_id,
                    destination=name,
                    state=DeliveryState.PENDING,
                    attempts=0,
                    run_after=now,
                    updated_at=now,
                )
            )


def fail(
    db: Database,
    job: ClaimedJob,
    error: str,
    *,
    backoff: Backoff,
    state: JobState | None = None,
    notify: Outbox | None = None,
) -> JobState | None:
    """Record a failed attempt: ``failed`` with a backoff, or ``dead`` after the limit.

    Parameters
    ----------
    state : JobState, optional
        A terminal state to set instead (``refused``).
    notify : Outbox, optional
        Puts ``job.failed`` or ``job.dead`` in the outbox, in the same transaction.

    Returns
    -------
    JobState or None
        The new state; None when the lease was lost.
    """
    now = utcnow()
    with db.session() as session:
        row = session.scalar(
            select(Job).where(_running(job.id, job.owner)).with_for_update()  # type: ignore[arg-type]
        )
        if row is None:
            return None
        new = _failed_state(row, state)
        row.state = new
        row.error = error[:4000]
        row.lease_owner = None
        row.lease_expires_at = None
        row.updated_at = now
        if new is JobState.FAILED:
            row.run_after = now + backoff.delay(row.attempts)
        else:
            row.finished_at = now
        kinds = {
            JobState.FAILED: JobAuditKind.JOB_FAILED,
            JobState.DEAD: JobAuditKind.JOB_DEAD,
            JobState.REFUSED: JobAuditKind.JOB_REFUSED,
        }
        record_job(session, kinds[new], job_id=row.id, subject=row.subject, detail=row.error)
        _notify_failure(session, notify, row)
    log.warning("job %s: %s", new.value, error, extra={"job": job.id})
    return new


def release(db: Database, job: ClaimedJob) -> bool:
    """Hand a running job back to the queue at once (the worker is stopping)."""
    now = utcnow()
    with db.session() as session:
        changed = session.execute(
            update(Job)
            .where(_running(job.id, job.owner))  # type: ignore[arg-type]
            .values(
                state=JobState.QUEUED,
                attempts=Job.attempts - 1,
                lease_owner=None,
                lease_expires_at=None,
                run_after=now,
                updated_at=now,
            )
        )
        return bool(changed.rowcount)  # type: ignore[attr-defined]


def _failed_state(row: Job, state: JobState | None) -> JobState:
    if state is not None:
        return state
    if row.attempts >= row.max_attempts:
        return JobState.DEAD
    return JobState.FAILED


def _notify_failure(session: Session, notify: Outbox | None, row: Job) -> None:
    """``job.failed`` / ``job.dead`` of ``row`` into the outbox (nothing for other states)."""
    events = {JobState.FAILED: Event.JOB_FAILED, JobState.DEAD: Event.JOB_DEAD}
    if notify is not None and row.state in events:
        session.flush()
        notify.job_event(session, events[row.state], row.id)


def reap_expired(db: Database, *, backoff: Backoff, notify: Outbox | None = None) -> list[int]:
    """Give the jobs whose lease expired (a worker died) back to the queue, or mark them dead.

    ``notify`` puts ``job.dead`` in the outbox for each job that died so.

    Returns
    -------
    list of int
        Ids of the jobs reaped.
    """
    now = utcnow()
    reaped: list[int] = []
    with db.session() as session:
        rows = session.scalars(
            select(Job)
            .where(Job.state == JobState.RUNNING, Job.lease_expires_at < now)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            row.state = JobState.DEAD if row.attempts >= row.max_attempts else JobState.QUEUED
            row.error = f"lease of {row.lease_owner} expired (worker stopped or died)"
            row.lease_owner = None
            row.lease_expires_at = None
            row.run_after = now
            row.updated_at = now
            if row.state is JobState.DEAD:
                row.finished_at = now
            record_job(
                session,
                JobAuditKind.JOB_DEAD
                if row.state is JobState.DEAD
                else JobAuditKind.JOB_LEASE_EXPIRED,
                job_id=row.id,
                subject=row.subject,
                detail=row.error,
            )
            if row.state is JobState.DEAD:
                _notify_failure(session, notify, row)
            reaped.append(row.id)
    if reaped:
        log.warning("re-queued %d job(s) with an expired lease", len(reaped))
    return reaped

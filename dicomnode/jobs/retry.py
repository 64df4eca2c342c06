"""Retrying a job by hand: ``dicomnode retry JOB_ID`` and ``POST /api/jobs/<id>/retry``.

A job is one pipeline run on one instance set: its idempotency key holds the digest of the
instances of its input series (:func:`~dicomnode.jobs.keys.instance_set_digest`). Retrying a
job whose inputs are unchanged queues it again and revives its dead deliveries (pending ones
keep their backoff: ``dicomnode send-now`` ends it).

When the input series got new or replaced instances since the job was queued, running the
job again would file results of the new instances under the key of the old ones. A retry
then does what the routing hook does when a series completes again with changed instances:
it queues a *new* job for the current instance set (its predecessor is the route's latest
succeeded job for the subject, so its results supersede the earlier ones), and leaves the old
job and its results alone. When a job for the current instances exists already, or a series
is still receiving, nothing is queued and the message says which job or series to look at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dicomnode.jobs.audit import JobAuditKind, record_job
from dicomnode.jobs.errors import InvalidJobId, JobError, NoSuchJob
from dicomnode.jobs.keys import instance_set_digest, job_key
from dicomnode.jobs.models import Delivery, DeliveryState, Job, JobState, latest_succeeded
from dicomnode.store.db import Database
from dicomnode.store.models import CompletionState, Instance, Series, utcnow

__all__ = ["MAX_JOB_ID", "checked_job_id", "retry"]

#: The largest id a job can have anywhere (SQLite's keys are signed 64-bit integers).
MAX_JOB_ID = 2**63 - 1

#: The largest on PostgreSQL, whose ``jobs.id`` is an INTEGER (a larger one is an error there).
_POSTGRESQL_MAX_JOB_ID = 2**31 - 1


def checked_job_id(value: int | str) -> int:
    """``value`` as a job id, or :class:`InvalidJobId` when no job can have it.

    Parameters
    ----------
    value : int or str
        An id from a command line or a URL; a string must be decimal digits only.

    Raises
    ------
    InvalidJobId
        Not a whole number from 1 to :data:`MAX_JOB_ID` (an SQLite integer overflow, not a
        "no such job", would follow otherwise).
    """
    if isinstance(value, str):
        text = value.strip()
        # 19 digits hold every 64-bit id; more would also make int() slow on huge input
        if not text.isascii() or not text.isdigit() or len(text.lstrip("0")) > 19:
            raise InvalidJobId(value)
        number = int(text)
    else:
        number = int(value)
    if not 1 <= number <= MAX_JOB_ID:
        raise InvalidJobId(value)
    return number


@dataclass(frozen=True)
class _Inputs:
    """The current instance set of a job's input series."""

    digest: str
    instances: int
    empty: list[str]
    receiving: list[str]


def _current_inputs(session: Session, series_uids: list[str]) -> _Inputs:
    rows = session.execute(
        select(Series.series_uid, Series.state, Instance.sop_instance_uid, Instance.sha256)
        .join(Instance, Instance.series_id == Series.id)
        .where(Series.series_uid.in_(series_uids))
    ).all()
    seen = {uid for uid, *_ in rows}
    receiving = sorted({uid for uid, state, *_ in rows if state is CompletionState.OPEN})
    return _Inputs(
        digest=instance_set_digest((sop, sha) for _, _, sop, sha in rows),
        instances=len(rows),
        empty=[uid for uid in series_uids if uid not in seen],
        receiving=receiving,
    )


def retry(db: Database, job_id: int | str, *, by: str | None = None) -> str:
    """Queue a job again (any state but running), or a new job when its inputs changed.

    ``by`` (who asked: ``HTTP API``, ``web: <operator>``) ends the audit row's detail.

    Returns
    -------
    str
        What was done, in one line.

    Raises
    ------
    InvalidJobId
        ``job_id`` is out of range (see :func:`checked_job_id`).
    NoSuchJob
        No job has ``job_id``.
    JobError
        It is running; or its inputs changed and nothing was queued (a job for
        the current inputs exists, a series is still receiving, or the series are gone).
    """
    job_id = checked_job_id(job_id)
    if db.engine.dialect.name == "postgresql" and job_id > _POSTGRESQL_MAX_JOB_ID:
        raise NoSuchJob(f"no job {job_id}")
    with db.session() as session:
        row = session.get(Job, job_id, with_for_update=True)
        if row is None:
            raise NoSuchJob(f"no job {job_id}")
        if row.state is JobState.RUNNING:
            raise JobError(f"job {job_id} is running; wait for it or for its lease to expire")
        series = [item["series_uid"] for item in json.loads(row.inputs)]
        current = _current_inputs(session, series)
        if current.digest != row.digest:
            return _requeue_changed(session, row, current, by)
        return _requeue(session, row, by)


def _by(by: str | None) -> str:
    return f"; by {by}" if by else ""


def _requeue(session: Session, row: Job, by: str | None) -> str:
    """The inputs are unchanged: queue the job (unless it succeeded) and its dead deliveries."""
    now = utcnow()
    revived = session.execute(
        update(Delivery)
        .where(Delivery.job_id == row.id, Delivery.state == DeliveryState.DEAD)
        .values(state=DeliveryState.PENDING, attempts=0, run_after=now, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    deliveries = f"{revived} dead deliveries queued again"
    record_job(
        session,
        JobAuditKind.JOB_RETRIED,
        job_id=row.id,
        subject=row.subject,
        detail=f"{row.state.value}; {deliveries}{_by(by)}",
    )
    if row.state is JobState.SUCCEEDED:
        return f"job {row.id} succeeded; {deliveries}"
    before = row.state.value
    row.state = JobState.QUEUED
    row.attempts = 0
    row.run_after = now
    row.updated_at = now
    row.finished_at = None
    return f"job {row.id} {before} -> queued; {deliveries}"


def _requeue_changed(session: Session, row: Job, current: _Inputs, by: str | None) -> str:
    """The inputs changed since ``row`` was queued: a new job for them, or why not."""
    changed = (
        f"job {row.id}: its input series changed since it was queued "
        f"({current.instances} instances now; digest {current.digest[:8]}, "
        f"was {row.digest[:8]})"
    )
    if current.empty:
        gone = ", ".join(_short(uid) for uid in current.empty)
        raise JobError(f"{changed}; series {gone} no longer stored: nothing to run")
    if current.receiving:
        busy = ", ".join(_short(uid) for uid in current.receiving)
        raise JobError(
            f"{changed}; series {busy} still receiving: nothing queued, routes run again "
            "when it completes"
        )
    covering = session.scalar(
        select(Job)
        .where(Job.route == row.route, Job.subject == row.subject, Job.digest == current.digest)
        .order_by(Job.id.desc())
        .limit(1)
    )
    if covering is not None:
        raise JobError(
            f"{changed}; job {covering.id} ({covering.state.value}) covers the current "
            f"instances: nothing queued, retry job {covering.id} instead"
        )
    new_id = _queue_successor(session, row, current.digest)
    record_job(
        session,
        JobAuditKind.JOB_RETRIED,
        job_id=row.id,
        subject=row.subject,
        detail=f"inputs changed; job {new_id} queued for the current instances{_by(by)}",
    )
    kept = f"job {row.id} stays {row.state.value}"
    return f"{changed}; queued job {new_id} for the current instances ({kept})"


def _queue_successor(session: Session, row: Job, digest: str) -> int:
    """Insert the job of ``row``'s route and series on the instance set ``digest``."""
    now = utcnow()
    inputs = json.loads(row.inputs)
    predecessor = latest_succeeded(session, row.route, row.subject)
    job = Job(
        key=job_key(
            route=row.route,
            pipeline=row.pipeline,
            version=row.pipeline_version,
            inputs=[(item["series_uid"], item.get("role")) for item in inputs],
            digest=digest,
        ),
        route=row.route,
        pipeline=row.pipeline,
        pipeline_version=row.pipeline_version,
        level=row.level,
        study_uid=row.study_uid,
        subject=row.subject,
        inputs=row.inputs,
        digest=digest,
        outputs=row.outputs,
        send_to=row.send_to,
        shadow=row.shadow,
        state=JobState.QUEUED,
        attempts=0,
        max_attempts=row.max_attempts,
        run_after=now,
        predecessor_id=predecessor,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    record_job(
        session,
        JobAuditKind.JOB_QUEUED,
        job_id=job.id,
        subject=row.subject,
        detail=f"route {row.route}; retry of job {row.id} with changed inputs",
    )
    return job.id


def _short(uid: str) -> str:
    return uid if len(uid) <= 24 else "…" + uid[-23:]

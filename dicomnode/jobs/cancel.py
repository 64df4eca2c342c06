"""Cancelling a job that waits to run (the web queue's "cancel" action).

A queued job, or a failed one waiting for its next attempt, becomes ``dead`` with the error
"cancelled by <operator>" and a ``job.cancelled`` audit row, in one transaction under the
job's row lock (a worker that claims it first wins: a running job is not cancelled).
``dicomnode retry`` queues a cancelled job again.
"""

from __future__ import annotations

from dicomnode.jobs.audit import JobAuditKind, record_job
from dicomnode.jobs.errors import JobError, NoSuchJob
from dicomnode.jobs.models import Job, JobState
from dicomnode.jobs.retry import checked_job_id
from dicomnode.store.db import Database
from dicomnode.store.models import utcnow

__all__ = ["CANCELLABLE", "cancel"]

#: The states a job can be cancelled in: waiting to run.
CANCELLABLE = frozenset({JobState.QUEUED, JobState.FAILED})


def cancel(db: Database, job_id: int | str, *, by: str) -> str:
    """Cancel job ``job_id`` (queued, or failed and waiting to be tried again).

    Parameters
    ----------
    db : Database
        The state database.
    job_id : int or str
        The job.
    by : str
        Who cancels (an operator's name; goes into the job's error and the audit row).

    Returns
    -------
    str
        What was done, in one line.

    Raises
    ------
    InvalidJobId
        ``job_id`` is out of range.
    NoSuchJob
        No job has this id.
    JobError
        The job is not waiting to run (running, or finished).
    """
    number = checked_job_id(job_id)
    with db.session() as session:
        row = session.get(Job, number, with_for_update=True)
        if row is None:
            raise NoSuchJob(f"no job {number}")
        if row.state not in CANCELLABLE:
            raise JobError(f"job {number} is {row.state.value}: only a waiting job is cancelled")
        now = utcnow()
        row.state = JobState.DEAD
        row.error = f"cancelled by {by}"[:500]
        row.finished_at = now
        row.updated_at = now
        row.lease_owner = None
        row.lease_expires_at = None
        record_job(
            session, JobAuditKind.JOB_CANCELLED, job_id=number, subject=row.subject, detail=by
        )
    return f"job {number} cancelled"

"""Audit rows for job state changes, in the node's audit trail.

The rows go to the same ``audit_events`` table as the store's (and commit with the change they
describe); the kinds are this module's, prefixed ``job.`` (delivery attempts have their own,
:class:`dicomnode.export.audit.ExportAuditKind`). Subjects are the series or study UID of the
job, details name job ids, routes and errors, never patient identifiers.
"""

from __future__ import annotations

import enum

from sqlalchemy.orm import Session

from dicomnode.store.audit import record

__all__ = ["JobAuditKind", "record_job"]


class JobAuditKind(str, enum.Enum):
    """What a job audit row records."""

    JOB_QUEUED = "job.queued"
    JOB_REFUSED = "job.refused"
    JOB_STARTED = "job.started"
    JOB_SUCCEEDED = "job.succeeded"
    #: Source header values the results could not copy as they were (keywords only).
    JOB_SOURCES_REPAIRED = "job.sources_repaired"
    JOB_FAILED = "job.failed"
    JOB_DEAD = "job.dead"
    JOB_LEASE_EXPIRED = "job.lease_expired"
    JOB_RETRIED = "job.retried"
    #: An operator cancelled a job that waited to run; ``detail`` names the operator.
    JOB_CANCELLED = "job.cancelled"


def record_job(
    session: Session, kind: JobAuditKind, *, job_id: int, subject: str | None, detail: str = ""
) -> None:
    """Add an audit row for job ``job_id`` to ``session`` (committed with the change)."""
    text = f"job {job_id}" + (f": {detail}" if detail else "")
    record(session, JobAuditKind(kind), subject=subject, detail=text[:2000])

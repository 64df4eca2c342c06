"""Tables of the job queue: jobs, their result instances, and one delivery per destination.

A job moves ``queued → running → succeeded``; a failed run goes to ``failed`` (retried after
``run_after``) and, after the attempt limit, to ``dead``. ``refused`` is terminal: the
pipeline's check said the inputs cannot be processed. A delivery moves ``pending → sending →
delivered``, back to ``pending`` with a later ``run_after`` on a transient failure, or to
``dead``.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from dicomnode.store.models import Base, UTCDateTime, utcnow

__all__ = [
    "CLAIMABLE",
    "Delivery",
    "DeliveryState",
    "Job",
    "JobResult",
    "JobStage",
    "JobState",
    "latest_succeeded",
]


class JobState(str, enum.Enum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    REFUSED = "refused"


class DeliveryState(str, enum.Enum):
    """Where one result instance is on its way to one destination."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    DEAD = "dead"


#: The jobs a worker may claim (when due), as literal SQL: the predicate of the partial index
#: ``ix_jobs_claim`` and the claim's WHERE are the same text, so both backends' planners can
#: prove the index applies (a bound parameter would not match the index predicate).
CLAIMABLE = text("state IN ('queued', 'failed')")


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        values_callable=lambda e: [m.value for m in e],
        native_enum=False,
        length=16,
    )


class Job(Base):
    """One pipeline run on one series (or the selected series of one study).

    ``key`` is the idempotency key: sha256 of route, pipeline name and version, the input
    series UIDs with their roles, and the digest of the inputs' instance set (SOP Instance
    UIDs and file sha256). The same key is never queued twice.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    route: Mapped[str] = mapped_column(String(64))
    pipeline: Mapped[str] = mapped_column(String(64))
    pipeline_version: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(8))
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(
        String(64), doc="series UID (series level) or study UID (study level)"
    )
    inputs: Mapped[str] = mapped_column(Text, doc="JSON list of {series_uid, role}")
    digest: Mapped[str] = mapped_column(String(64), doc="sha256 of the input instance set")
    outputs: Mapped[str] = mapped_column(Text, doc="JSON list of output kinds")
    send_to: Mapped[str] = mapped_column(Text, doc="JSON list of destination names")
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[JobState] = mapped_column(_enum(JobState, "job_state"), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    predecessor_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    priority: Mapped[int] = mapped_column(
        Integer, default=2, server_default="2", doc="0 stat, 1 high, 2 routine (Priority.rank)"
    )
    findings: Mapped[str | None] = mapped_column(
        Text, nullable=True, doc="JSON findings summary of a succeeded job (notify.summary)"
    )

    results: Mapped[list[JobResult]] = relationship(back_populates="job")

    __table_args__ = (
        Index("ix_jobs_state_run_after", "state", "run_after"),
        Index("ix_jobs_route_subject", "route", "subject"),
        # the claim's order (priority, then age) over the claimable jobs only
        Index(
            "ix_jobs_claim",
            "priority",
            "run_after",
            "id",
            sqlite_where=CLAIMABLE,
            postgresql_where=CLAIMABLE,
        ),
    )


class JobResult(Base):
    """A result instance a job made; persisted before any delivery so a retry reuses it."""

    __tablename__ = "job_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    series_uid: Mapped[str] = mapped_column(String(64))
    study_uid: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255), doc="relative to <data_dir>/results")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="results")


class Delivery(Base):
    """One result instance to one destination."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("job_results.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    destination: Mapped[str] = mapped_column(String(64))
    state: Mapped[DeliveryState] = mapped_column(
        _enum(DeliveryState, "delivery_state"), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("result_id", "destination", name="uq_deliveries_result_destination"),
        Index("ix_deliveries_state_run_after", "state", "run_after"),
    )


class JobStage(Base):
    """One stage of a job's timeline (see :mod:`dicomnode.jobs.timeline`).

    ``attempt`` is 0 for the stages before any run (received, completed, queued) and the
    attempt number for the stages of a run; every attempt's rows are kept.
    """

    __tablename__ = "job_stages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(
        String(96), nullable=True, doc="the completion signal, the destination, the worker"
    )


def latest_succeeded(session: Session, route: str, subject: str) -> int | None:
    """Id of the route's last succeeded job on ``subject``: the predecessor a new run replaces."""
    return session.scalar(
        select(Job.id)
        .where(Job.route == route, Job.subject == subject, Job.state == JobState.SUCCEEDED)
        .order_by(Job.id.desc())
        .limit(1)
    )

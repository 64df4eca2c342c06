"""Per-stage timeline of a job: when each step between the last image and the PACS happened.

Stages, in order (:class:`Stage`): the last instance of the job's inputs received, their
completion (``detail``: the :class:`~dicomnode.store.models.CompletionSignal` that judged it),
the job queued, started (claimed by a worker; ``detail``: the lease owner), the model ready
(the pipeline loaded and warm in the inference child), inference done (the pipeline's ``run``
returned), the results written (files durable and their rows committed), and each delivery
acknowledged by its destination (``detail``: the destination name; one row per result
instance and destination).

Each stage is a row of ``job_stages`` written in the transaction that already records the
step (queueing, claiming, succeeding, recording a delivery): no extra commit. The stages
before any run have ``attempt`` 0; the others carry their attempt number, and every attempt's
rows are kept. The timeline shown (:func:`timelines`) is the pre-run stages and the latest
attempt's.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicomnode.jobs.models import JobStage
from dicomnode.store.models import Series, Study

__all__ = [
    "Stage",
    "StageMark",
    "add_stages",
    "interval",
    "previous",
    "queued_marks",
    "timelines",
    "total_seconds",
]


class Stage(str, enum.Enum):
    """A step of a job's life, in the order they happen."""

    RECEIVED = "received"  # the last instance of the job's inputs stored
    COMPLETED = "completed"  # the inputs judged complete (detail: the signal)
    QUEUED = "queued"  # the job row inserted
    STARTED = "started"  # claimed by a worker (detail: the lease owner)
    MODEL_READY = "model_ready"  # the pipeline loaded, its model on the device
    INFERENCE_DONE = "inference_done"  # the pipeline's run returned its findings
    WRITTEN = "written"  # result files durable and their rows committed
    DELIVERED = "delivered"  # one result acknowledged by one destination (detail: its name)


_ORDER = {stage: index for index, stage in enumerate(Stage)}


def previous(stage: Stage | str) -> Stage | None:
    """The stage before ``stage`` (None for the first)."""
    index = _ORDER[Stage(stage)]
    return list(Stage)[index - 1] if index else None


def interval(stage: Stage | str) -> str | None:
    """Name of the interval that ends at ``stage``: ``"completed_to_queued"``; None for the
    first stage."""
    before = previous(stage)
    return None if before is None else f"{before.value}_to_{Stage(stage).value}"


@dataclass(frozen=True)
class StageMark:
    """A stage about to be recorded."""

    stage: Stage
    at: datetime
    detail: str | None = None
    attempt: int = 0


def add_stages(session: Session, job_id: int, marks: Iterable[StageMark]) -> None:
    """Add the ``marks`` of job ``job_id`` to ``session`` (committed with the caller's step)."""
    session.add_all(
        JobStage(
            job_id=job_id,
            attempt=mark.attempt,
            stage=mark.stage.value,
            at=mark.at,
            detail=None if mark.detail is None else mark.detail[:96],
        )
        for mark in marks
    )


def queued_marks(
    session: Session, *, level: str, subject: str, series_uids: Sequence[str], now: datetime
) -> list[StageMark]:
    """The stages up to the queueing of a job: last instance received, completion, queued.

    The completion (time and signal) is the subject's: the series' for a series-level job,
    the study's for a study-level one. A stage whose time is not known is left out.
    """
    marks: list[StageMark] = []
    received = session.scalar(
        select(func.max(Series.last_received_at)).where(Series.series_uid.in_(series_uids))
    )
    if received is not None:
        marks.append(StageMark(Stage.RECEIVED, received))
    model: type[Study] | type[Series] = Study if level == "study" else Series
    uid = Study.study_uid if level == "study" else Series.series_uid
    done = session.execute(
        select(model.completed_at, model.completed_by).where(uid == subject)
    ).first()
    if done is not None and done[0] is not None:
        marks.append(StageMark(Stage.COMPLETED, done[0], done[1]))
    marks.append(StageMark(Stage.QUEUED, now))
    return marks


def _entries(rows: Sequence[JobStage]) -> list[dict[str, Any]]:
    """The shown timeline of one job's rows: the pre-run stages and the latest attempt's,
    in stage order, each with the seconds since the entry before it."""
    latest = max((row.attempt for row in rows), default=0)
    shown = sorted(
        (row for row in rows if row.attempt in (0, latest)),
        key=lambda row: (_ORDER.get(Stage(row.stage), 99), row.at, row.id),
    )
    entries: list[dict[str, Any]] = []
    before: datetime | None = None
    for row in shown:
        entries.append(
            {
                "stage": row.stage,
                "at": row.at.isoformat(),
                "seconds": None if before is None else round((row.at - before).total_seconds(), 3),
                "attempt": row.attempt,
                "detail": row.detail,
            }
        )
        before = row.at
    return entries


def timelines(session: Session, job_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The timeline of each job of ``job_ids`` (jobs without stages are left out).

    Each entry: ``stage``, ``at`` (ISO 8601, UTC), ``seconds`` since the entry before
    (None for the first), ``attempt`` and ``detail``.
    """
    by_job: dict[int, list[JobStage]] = {}
    for start in range(0, len(job_ids), 500):
        chunk = list(job_ids[start : start + 500])
        for row in session.scalars(
            select(JobStage).where(JobStage.job_id.in_(chunk)).order_by(JobStage.id)
        ):
            by_job.setdefault(row.job_id, []).append(row)
    return {job_id: _entries(rows) for job_id, rows in by_job.items()}


def total_seconds(entries: Sequence[dict[str, Any]]) -> float | None:
    """Seconds from the first entry of a timeline to its last (None with fewer than two)."""
    if len(entries) < 2:
        return None
    first = datetime.fromisoformat(entries[0]["at"])
    last = datetime.fromisoformat(entries[-1]["at"])
    return round((last - first).total_seconds(), 3)

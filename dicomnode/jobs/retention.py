"""What retention must know about jobs: whether a study still has work, and its result files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from dicomnode.jobs.models import Delivery, DeliveryState, Job, JobState

__all__ = ["ResultFiles", "study_busy"]

_OPEN_JOBS = (JobState.QUEUED, JobState.RUNNING, JobState.FAILED)
_OPEN_DELIVERIES = (DeliveryState.PENDING, DeliveryState.SENDING)


def study_busy(session: Session, study_uid: str) -> bool:
    """Whether the study has a job still to run or a result still to deliver."""
    jobs = exists().where(Job.study_uid == study_uid, Job.state.in_(_OPEN_JOBS))
    deliveries = (
        exists()
        .where(Delivery.job_id == Job.id)
        .where(Job.study_uid == study_uid, Delivery.state.in_(_OPEN_DELIVERIES))
    )
    return bool(session.scalar(select(jobs | deliveries)))


class ResultFiles:
    """The result directories (``<results_root>/<job id>``) of a study's jobs."""

    def __init__(self, results_root: Path):
        self.results_root = results_root

    def __call__(self, session: Session, study_uid: str) -> Sequence[Path]:
        ids = session.scalars(select(Job.id).where(Job.study_uid == study_uid))
        return [self.results_root / str(job_id) for job_id in ids]

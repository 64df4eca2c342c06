"""Job rows written straight into a state database, for tests of what reads them."""

from __future__ import annotations

from typing import Any

from dicomnode.jobs.models import Job, JobState


def job_row(state: JobState, key: str, **values: Any) -> Job:
    """A series-level job of the toy pipeline in ``state`` (``values`` override any column)."""
    columns: dict[str, Any] = {
        "key": key.ljust(64, "k")[:64],
        "route": "r",
        "pipeline": "toy",
        "pipeline_version": "1",
        "level": "series",
        "study_uid": "1.2",
        "subject": "1.2.3",
        "inputs": "[]",
        "digest": "d" * 64,
        "outputs": "[]",
        "send_to": "[]",
        "state": state,
        "max_attempts": 3,
    }
    columns.update(values)
    return Job(**columns)

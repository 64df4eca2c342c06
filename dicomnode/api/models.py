"""The typed bodies of the HTTP API (pydantic), as the OpenAPI schema shows them.

Row models allow extra fields: the row functions (:func:`dicomnode.store.report.series_rows`,
:func:`dicomnode.jobs.report.job_rows`, :func:`dicomnode.export.report.delivery_rows`) may
grow a column before the model names it, and the API passes it on.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DeliveryRow",
    "ErrorBody",
    "Health",
    "JobRow",
    "Message",
    "Readiness",
    "SendNowResult",
    "SeriesRow",
    "SessionInfo",
]


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow")


class SeriesRow(_Row):
    """A series with its study, state and instance count; no patient identifiers."""

    study_uid: str
    study_state: str
    series_uid: str
    modality: str | None = None
    series_number: int | None = None
    description: str | None = None
    series_state: str
    last_received_at: str
    completions: int
    instances: int
    routing: str | None = None


class JobRow(_Row):
    """A job with its delivery counts by state."""

    id: int
    state: str
    route: str
    #: ``stat``, ``high`` or ``routine``: the order in which free workers take jobs.
    priority: str = "routine"
    pipeline: str
    level: str
    subject: str
    attempts: int
    max_attempts: int
    created_at: str
    finished_at: str | None = None
    deliveries: dict[str, int]
    next_attempt_at: str | None = None
    error: str | None = None
    #: The job's stages: ISO times and seconds since the stage before.
    timeline: list[dict[str, Any]] = Field(default_factory=list)
    #: From the first stage to the last.
    latency_seconds: float | None = None


class DeliveryRow(_Row):
    """A delivery: one result instance to one destination."""

    id: int
    job_id: int
    destination: str
    state: str
    attempts: int
    last_status: str | None = None
    error: str | None = None
    sop_instance_uid: str
    series_uid: str
    next_attempt_at: str | None = None
    delivered_at: str | None = None


class Health(BaseModel):
    """``/healthz``: the process answers."""

    status: str


class Readiness(BaseModel):
    """``/readyz``: every check with ``ok: …`` or ``FAIL: …``."""

    ready: bool
    checks: dict[str, str]


class Message(BaseModel):
    """What an action did, in one line."""

    message: str


class SendNowResult(Message):
    """``send-now``: how many pending deliveries were made due."""

    deliveries: int


class ErrorBody(BaseModel):
    """Every error answer: one line, never internals or patient data."""

    error: str
    detail: Any = None


class SessionInfo(BaseModel):
    """The web session: who, how, and the CSRF token its forms must carry."""

    identity: str
    access: str
    csrf_token: str | None = None

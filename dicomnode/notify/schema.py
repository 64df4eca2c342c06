"""The ``notify:`` section of the config: webhooks, the events they want, and retry timings.

::

    notify:
      webhooks:
        ris:
          url: https://ris.example.org/hooks/dicomnode
          secret: a-long-random-shared-secret      # HMAC-SHA256 of the body, optional
          events: [job.failed, job.dead, delivery.dead, findings]
          findings:                                 # `findings` fires when one holds
            - {kind: lung_nodule, min_diameter_mm: 8}
          routes: [chest-ct-nodules]                # optional: only these routes' jobs
          include_identifiers: false                # default: no patient identifiers

Conditions are declarative (a finding kind and minimum measurements), never evaluated code.
"""

from __future__ import annotations

import re
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dicomnode.results.findings import FindingKind

__all__ = ["Event", "FindingCondition", "NotifyConfig", "WebhookConfig"]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Event(StrEnum):
    """What a webhook can be told about."""

    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_DEAD = "job.dead"
    DELIVERY_DEAD = "delivery.dead"
    #: A succeeded job whose findings meet one of the webhook's ``findings`` conditions.
    FINDINGS = "findings"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FindingCondition(_Section):
    """Holds when one finding of ``kind`` reaches every minimum given.

    ``{kind: lung_nodule, min_diameter_mm: 8}`` reads "any lung nodule of 8 mm or more".
    With no minimum, any finding of the kind (a region, a classification, a non-empty
    mask) meets it. A finding without the measurement does not meet its minimum.
    """

    kind: FindingKind
    min_diameter_mm: float | None = Field(None, ge=0)
    min_volume_ml: float | None = Field(None, ge=0)
    min_score: float | None = Field(None, ge=0, le=1)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"url must start with http:// or https://, got {parts.scheme or url!r}")
    if not parts.hostname:
        raise ValueError(f"url has no host: {url!r}")
    if parts.username or parts.password:
        raise ValueError("url must not hold credentials (use secret for a signature)")
    return url


class WebhookConfig(_Section):
    """One webhook: where to POST, what about, and how to sign.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL (certificates are verified against the system CAs).
    secret : str, optional
        Shared secret (at least 16 characters): each request carries
        ``X-Dicomnode-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>``.
    events : list of Event
        At least one of ``job.succeeded``, ``job.failed``, ``job.dead``, ``delivery.dead``,
        ``findings``.
    findings : list of FindingCondition
        For ``findings``: it fires when any condition holds (none given: when anything was
        found).
    routes : list of str, optional
        Only jobs of these routes (default: every route).
    include_identifiers : bool
        Add PatientID, PatientName and AccessionNumber to the body (default false).
    """

    url: str = Field(min_length=1)
    secret: str | None = Field(None, min_length=16)
    events: list[Event] = Field(min_length=1)
    findings: list[FindingCondition] = Field(default_factory=list)
    routes: list[str] | None = None
    include_identifiers: bool = False

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        return _check_url(url)

    @model_validator(mode="after")
    def _findings_need_event(self) -> WebhookConfig:
        if self.findings and Event.FINDINGS not in self.events:
            raise ValueError("findings: conditions need the findings event in events")
        return self

    def wants(self, event: Event, route: str | None) -> bool:
        """Whether this webhook is told about ``event`` of a job of ``route``."""
        if event not in self.events:
            return False
        return self.routes is None or route is None or route in self.routes


class NotifyConfig(_Section):
    """Webhooks told about job outcomes and findings, from a durable outbox.

    Requests are sent by a periodic sweep (never by the job), each with ``timeout``; a
    failed one (connection error, timeout, any status but 2xx) is retried with backoff
    (``backoff_seconds`` doubling up to ``max_backoff_seconds``) and dead after
    ``max_attempts``.
    """

    webhooks: dict[str, WebhookConfig] = Field(default_factory=dict)
    max_attempts: int = Field(8, ge=1, le=1000, description="a notification is dead after this")
    backoff_seconds: float = Field(5.0, ge=0, le=86400, description="first retry delay")
    max_backoff_seconds: float = Field(600.0, ge=0, le=7 * 86400)
    timeout: float = Field(10.0, gt=0, le=300, description="s: connect and read timeout")
    poll_seconds: float = Field(2.0, ge=0.1, le=600, description="how often the outbox is swept")
    batch: int = Field(50, ge=1, le=1000, description="notifications sent per sweep")

    @field_validator("webhooks")
    @classmethod
    def _names(cls, webhooks: dict[str, WebhookConfig]) -> dict[str, WebhookConfig]:
        for name in webhooks:
            if not _NAME_RE.fullmatch(name):
                raise ValueError(
                    f"{name!r}: a name is letters, digits, '.', '_' or '-' (at most 64)"
                )
        return webhooks

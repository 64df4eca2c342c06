"""The audit trail: one row per state change or security event, never patient identifiers."""

from __future__ import annotations

import enum
import logging

from sqlalchemy.orm import Session

from dicomnode.store.models import AuditEvent, utcnow

__all__ = ["AuditKind", "record"]

log = logging.getLogger(__name__)


class AuditKind(str, enum.Enum):
    """What an audit row records."""

    ASSOCIATION_ACCEPTED = "association.accepted"
    #: A security rejection (DICOM audit "Security Alert"): a refused association, a failed
    #: TLS handshake, a PDU over the negotiated maximum. ``detail`` says which.
    SECURITY_ALERT = "security.alert"
    INSTANCE_SUPERSEDED = "instance.superseded"
    INSTANCE_RECOVERED = "instance.recovered"
    STORE_FAILED = "store.failed"
    SERIES_RECEIVED = "series.received"
    SERIES_COMPLETE = "series.complete"
    SERIES_REOPENED = "series.reopened"
    STUDY_COMPLETE = "study.complete"
    STUDY_REOPENED = "study.reopened"
    STUDY_DELETED = "study.deleted"


def record(
    session: Session,
    kind: enum.Enum,
    *,
    subject: str | None = None,
    peer: str | None = None,
    detail: str | None = None,
) -> AuditEvent:
    """Add an audit row to ``session`` (committed with the change it describes).

    Parameters
    ----------
    session : Session
        The transaction of the change being audited.
    kind : enum.Enum
        What happened: an :class:`AuditKind`, or another package's kind enum (its value is
        stored, e.g. ``job.queued``).
    subject : str, optional
        The UID concerned (study, series or SOP instance).
    peer : str, optional
        Calling AE and address, e.g. ``PACS1@10.0.0.5``.
    detail : str, optional
        One line of context; must not hold patient identifiers.
    """
    event = AuditEvent(at=utcnow(), kind=str(kind.value), subject=subject, peer=peer, detail=detail)
    session.add(event)
    return event

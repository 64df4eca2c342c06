"""The audit trail: one row per state change or security event, never patient identifiers."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction

from dicomnode.store.models import AuditEvent, utcnow

__all__ = ["AuditEntry", "AuditKind", "AuditSink", "forward", "record", "record_core", "set_sink"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditEntry:
    """A committed audit row, as handed to the sink (plain values, no ORM state)."""

    at: datetime
    kind: str
    subject: str | None
    peer: str | None
    detail: str | None


#: Called with each committed audit row, on the committing thread: it must be quick and must
#: not raise (:class:`dicomnode.audit.Forwarder` queues and returns).
AuditSink = Callable[[AuditEntry], None]

_sink: AuditSink | None = None
_PENDING = "dicomnode.audit.pending"


def set_sink(sink: AuditSink | None) -> None:
    """Forward every audit row to ``sink`` once its transaction commits (None: stop).

    Process-wide, set by the composition root at start-up (the syslog forwarder); rows of
    transactions that roll back are never forwarded.
    """
    global _sink
    _sink = sink


def forward(entries: Iterable[AuditEntry]) -> None:
    """Hand committed audit rows to the sink of :func:`set_sink`; never raises for the sink.

    :func:`record` does this itself when its session commits; callers of :func:`record_core`
    call it once their transaction has committed.
    """
    sink = _sink
    if sink is None:
        return
    for entry in entries:
        try:
            sink(entry)
        except Exception:  # the audit sink must never fail a commit
            log.exception("audit sink failed")


@sa_event.listens_for(Session, "after_commit")
def _forward_committed(session: Session) -> None:
    pending: list[AuditEntry] | None = session.info.pop(_PENDING, None)
    if pending:
        forward(pending)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        session.info.pop(_PENDING, None)


def _pend(session: Session, event: AuditEvent) -> None:
    entry = AuditEntry(event.at, event.kind, event.subject, event.peer, event.detail)
    pending: Any = session.info.setdefault(_PENDING, [])
    pending.append(entry)


class AuditKind(str, enum.Enum):
    """What an audit row records."""

    ASSOCIATION_ACCEPTED = "association.accepted"
    #: An accepted association the node aborted (no DIMSE request within
    #: ``node.first_message_timeout``).
    ASSOCIATION_ABORTED = "association.aborted"
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
    #: A completed series (study, for study-level routes) matched no route; ``detail`` has,
    #: per route, the first failed condition as ``route explain`` words it, or says that no
    #: routes are configured.
    NO_ROUTE = "routing.no_match"
    #: A Storage Commitment request (N-ACTION) was answered; ``subject`` is its Transaction
    #: UID, ``detail`` the number of listed instances.
    COMMITMENT_REQUESTED = "commitment.requested"
    #: The commitment result (N-EVENT-REPORT) was sent; ``detail``: counts and association.
    COMMITMENT_REPORTED = "commitment.reported"
    #: The commitment result could not be sent (requester gone and not a known source, peer
    #: down, refused); ``detail`` says why.
    COMMITMENT_UNREPORTED = "commitment.unreported"
    #: A Modality Performed Procedure Step was created (N-CREATE); ``subject`` its SOP
    #: Instance UID.
    MPPS_CREATED = "mpps.created"
    #: A Modality Performed Procedure Step was updated (N-SET); ``detail``: its status.
    MPPS_UPDATED = "mpps.updated"
    #: A job's priors were asked of a source (``subject``: the current study; ``peer``: the
    #: source; ``detail``: the route and the look-back).
    PRIORS_REQUESTED = "priors.requested"
    #: A source answered the priors query; ``detail``: how many studies and series matched.
    PRIORS_FOUND = "priors.found"
    #: Prior series were retrieved (C-MOVE or C-GET; ``subject``: the prior study;
    #: ``detail``: instances, bytes, seconds), or found already stored and used as they are.
    PRIORS_RETRIEVED = "priors.retrieved"
    #: The node's own earlier SRs of a prior study were looked for at the source
    #: (``subject``: the prior study; ``detail``: how many SR series were listed, how many
    #: are reports of the job's pipeline, which one each prior series uses).
    PRIORS_REPORTS = "priors.reports"
    #: A priors query or retrieval failed or ran past ``priors.timeout``: the job runs
    #: without (those) priors; ``detail`` says why.
    PRIORS_FAILED = "priors.failed"
    #: SIGHUP: the node re-read its config; ``detail`` names what changed.
    CONFIG_RELOADED = "config.reloaded"
    #: SIGHUP: the re-read config was invalid and the running one stays; ``detail`` says why.
    CONFIG_REFUSED = "config.refused"
    #: A STOW-RS request was answered; ``peer`` is ``stow:<who>@<address>``, ``subject`` the
    #: study of ``/studies/{study}``, ``detail`` how many instances were stored and failed.
    STOW_REQUEST = "stow.request"
    #: An operator logged in to the web app (a session began); ``detail`` names the operator.
    WEB_LOGIN = "web.login"
    #: An operator logged out of the web app (the session ended).
    WEB_LOGOUT = "web.logout"
    #: An operator was shown patient identifiers (a web page with names, IDs, accession
    #: numbers); ``subject`` the study (None for a list), ``detail`` the operator and page.
    IDENTIFIERS_VIEWED = "web.identifiers_viewed"
    #: An operator acted from the web app (retry, cancel, send now); ``detail``: who, what,
    #: and the outcome.
    OPERATOR_ACTION = "web.action"


def record(
    session: Session,
    kind: enum.Enum,
    *,
    subject: str | None = None,
    peer: str | None = None,
    detail: str | None = None,
) -> AuditEvent:
    """Add an audit row to ``session`` (committed with the change it describes).

    Once the transaction commits, the row also goes to the sink of :func:`set_sink` (the
    syslog forwarder, when ``audit.syslog`` is configured); this never raises for the sink.

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
    if _sink is not None:
        _pend(session, event)
    return event


_INSERT = insert(AuditEvent)


def record_core(
    connection: Connection,
    kind: enum.Enum,
    *,
    subject: str | None = None,
    peer: str | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """Insert an audit row on a Core ``connection``, in its transaction (see :func:`record`).

    For paths that run without an ORM session (the store's per-instance transaction): the
    row is written with the change it describes, and the caller passes the returned entry to
    :func:`forward` once the transaction has committed (never when it rolled back).
    """
    entry = AuditEntry(utcnow(), str(kind.value), subject, peer, detail)
    connection.execute(
        _INSERT,
        {"at": entry.at, "kind": entry.kind, "subject": subject, "peer": peer, "detail": detail},
    )
    return entry

"""Studies and series with their states, as rows (``dicomnode status`` and the HTTP API)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicomnode.store.audit import AuditKind
from dicomnode.store.db import Database
from dicomnode.store.models import AuditEvent, CompletionState, Instance, Series, Study

__all__ = ["NO_ROUTE", "audit_rows", "series_rows"]

#: ``routing`` of a complete series whose completion (or its study's) matched no route.
NO_ROUTE = "no route"

#: The job audit kinds that say a route took a series (:class:`dicomnode.jobs.JobAuditKind`;
#: named here as stored, the store does not import the job engine).
_ROUTED_KINDS = ("job.queued", "job.refused")
_KINDS = (AuditKind.SERIES_COMPLETE.value, AuditKind.STUDY_COMPLETE.value, AuditKind.NO_ROUTE.value)


def _latest_events(session: Session) -> dict[tuple[str, str], int]:
    """(subject, kind) → id of the newest audit row, for the kinds that tell routing."""
    rows = session.execute(
        select(AuditEvent.subject, AuditEvent.kind, func.max(AuditEvent.id))
        .where(AuditEvent.kind.in_(_KINDS + _ROUTED_KINDS), AuditEvent.subject.is_not(None))
        .group_by(AuditEvent.subject, AuditEvent.kind)
    )
    return {(str(subject), kind): last for subject, kind, last in rows}


def _unrouted(latest: dict[tuple[str, str], int], uid: str, completed: str) -> bool:
    """Whether the newest completion of ``uid`` was followed by a ``routing.no_match`` row."""
    done = latest.get((uid, completed))
    missed = latest.get((uid, AuditKind.NO_ROUTE.value))
    return done is not None and missed is not None and missed > done


def _routing(latest: dict[tuple[str, str], int], row: Any) -> str | None:
    """``no route`` for a complete series its completion, or its complete study's, left
    without a route (and no job took it since its completion); else None."""
    study_uid, study_state, series_uid, series_state = row[0], row[1], row[2], row[6]
    if series_state is not CompletionState.COMPLETE:
        return None
    if _unrouted(latest, series_uid, AuditKind.SERIES_COMPLETE.value):
        return NO_ROUTE
    if study_state is not CompletionState.COMPLETE:
        return None
    if not _unrouted(latest, study_uid, AuditKind.STUDY_COMPLETE.value):
        return None
    done = latest.get((series_uid, AuditKind.SERIES_COMPLETE.value), 0)
    routed = (latest.get((series_uid, kind), 0) for kind in _ROUTED_KINDS)
    return None if any(last > done for last in routed) else NO_ROUTE


def series_rows(db: Database) -> list[dict[str, Any]]:
    """One row per series with its study, state and instance count; no patient identifiers.

    ``routing`` is ``no route`` (:data:`NO_ROUTE`) for a complete series that matched no
    route when it (or, for study-level routes, its study) last completed; else None.
    """
    with db.session() as session:
        latest = _latest_events(session)
        rows = session.execute(
            select(
                Study.study_uid,
                Study.state,
                Series.series_uid,
                Series.modality,
                Series.series_number,
                Series.description,
                Series.state,
                Series.last_received_at,
                Series.completions,
                func.count(Instance.id),
            )
            .join(Series, Series.study_id == Study.id)
            .outerjoin(Instance, Instance.series_id == Series.id)
            .group_by(Study.id, Series.id)
            .order_by(Study.first_received_at, Series.series_number, Series.id)
        ).all()
    return [
        {
            "study_uid": r[0],
            "study_state": r[1].value,
            "series_uid": r[2],
            "modality": r[3],
            "series_number": r[4],
            "description": r[5],
            "series_state": r[6].value,
            "last_received_at": r[7].isoformat(),
            "completions": r[8],
            "instances": r[9],
            "routing": _routing(latest, r),
        }
        for r in rows
    ]


def audit_rows(db: Database, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` audit events, oldest of them first."""
    with db.session() as session:
        events = session.scalars(
            select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        ).all()
    return [
        {
            "at": ev.at.isoformat(timespec="seconds"),
            "kind": ev.kind,
            "subject": ev.subject,
            "peer": ev.peer,
            "detail": ev.detail,
        }
        for ev in reversed(events)
    ]

"""Studies and series with their states, as rows (``dicomnode status`` and the HTTP API)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from dicomnode.store.db import Database
from dicomnode.store.models import AuditEvent, Instance, Series, Study

__all__ = ["audit_rows", "series_rows"]


def series_rows(db: Database) -> list[dict[str, Any]]:
    """One row per series with its study, state and instance count; no patient identifiers."""
    with db.session() as session:
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

"""Series and study stability: complete after a quiet period, judged from the database.

The state lives in the DB, so a restart inside the quiet window neither loses nor repeats a
completion: the sweep flips ``open`` to ``complete`` with one conditional UPDATE per row, and
only the sweeper whose UPDATE changed the row sees it as completed (safe with many sweepers on
PostgreSQL too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dicomnode.store.audit import AuditKind, record
from dicomnode.store.db import Database
from dicomnode.store.models import CompletionState, Series, Study, utcnow

__all__ = ["CompletionHook", "SweepResult", "sweep"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    """UIDs completed by one sweep."""

    series: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)


#: Called inside the sweep's transaction with what it completed (e.g. to queue jobs), so the
#: completion and its consequences commit together or not at all.
CompletionHook = Callable[[Session, SweepResult], None]


def sweep(
    db: Database,
    *,
    series_seconds: float,
    study_seconds: float,
    now: datetime | None = None,
    hooks: Sequence[CompletionHook] = (),
) -> SweepResult:
    """Mark quiet series and studies complete.

    Parameters
    ----------
    db : Database
        The state database.
    series_seconds, study_seconds : float
        Quiet period after the last received instance.
    now : datetime, optional
        The current time (tests pass their own).
    hooks : sequence of CompletionHook
        Run in the same transaction after the state change.

    Returns
    -------
    SweepResult
        The series and studies this call completed.
    """
    now = now or utcnow()
    with db.session() as session:
        series = _complete(
            session, Series, Series.series_uid, now - timedelta(seconds=series_seconds), now
        )
        studies = _complete(
            session, Study, Study.study_uid, now - timedelta(seconds=study_seconds), now
        )
        result = SweepResult(series=series, studies=studies)
        for uid in series:
            record(session, AuditKind.SERIES_COMPLETE, subject=uid)
        for uid in studies:
            record(session, AuditKind.STUDY_COMPLETE, subject=uid)
        for hook in hooks:
            hook(session, result)
    if series or studies:
        log.info("completed %d series and %d studies", len(series), len(studies))
    return result


def _complete(
    session: Session,
    model: type[Series] | type[Study],
    uid_col: object,
    cutoff: datetime,
    now: datetime,
) -> list[str]:
    candidates = list(
        session.execute(
            select(model.id, uid_col).where(  # type: ignore[call-overload]
                model.state == CompletionState.OPEN, model.last_received_at <= cutoff
            )
        )
    )
    done: list[str] = []
    for row_id, uid in candidates:
        changed = session.execute(
            update(model)
            .where(
                model.id == row_id,
                model.state == CompletionState.OPEN,
                model.last_received_at <= cutoff,
            )
            .values(
                state=CompletionState.COMPLETE, completed_at=now, completions=model.completions + 1
            )
        )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            done.append(uid)
    return done

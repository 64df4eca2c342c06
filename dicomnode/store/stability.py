"""Series and study stability: complete after a quiet period, judged from the database.

The state lives in the DB, so a restart inside the quiet window neither loses nor repeats a
completion: the sweep flips ``open`` to ``complete`` with one conditional UPDATE per row, and
only the sweeper whose UPDATE changed the row sees it as completed (safe with many sweepers on
PostgreSQL too).

No slow work runs inside a transaction (on SQLite every transaction holds the write lock that
each received instance needs): the completions commit first; then each completion the
:data:`CompletionHook` s have not acted on yet (``handled < completions``) is handed to them.
A hook does its slow part (reading headers, asking pipelines) outside any transaction and
returns what to write; that write commits in one short transaction together with the mark
that the completion was handled. A crash in between leaves the completion unhandled, and the
next sweep (after a restart: the first) hands it on again, so each completion's consequences
commit exactly once. A series that re-opened meanwhile is not handled: its next completion is.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dicomnode.store.audit import AuditKind, record
from dicomnode.store.db import Database
from dicomnode.store.models import CompletionState, Series, Study, utcnow

__all__ = [
    "Completion",
    "CompletionAction",
    "CompletionHook",
    "Level",
    "SweepResult",
    "hand_on",
    "sweep",
]

log = logging.getLogger(__name__)


class Level(str, enum.Enum):
    """What completed: a series or a study."""

    SERIES = "series"
    STUDY = "study"


@dataclass(frozen=True)
class SweepResult:
    """UIDs completed by one sweep."""

    series: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Completion:
    """One completion of a series or study: its ``number`` is the row's ``completions``."""

    level: Level
    uid: str
    number: int


#: What a hook writes for a completion; runs in the short transaction that marks it handled.
CompletionAction = Callable[[Session], None]

#: Called with each completion not handled yet, outside any transaction (it may open its own
#: short ones to read); returns what to write, or None when there is nothing to write.
CompletionHook = Callable[[Database, Completion], CompletionAction | None]

_MODELS: dict[Level, type[Series] | type[Study]] = {Level.SERIES: Series, Level.STUDY: Study}


def sweep(
    db: Database,
    *,
    series_seconds: float,
    study_seconds: float,
    now: datetime | None = None,
    hooks: Sequence[CompletionHook] = (),
) -> SweepResult:
    """Mark quiet series and studies complete, then hand every unhandled completion on.

    Parameters
    ----------
    db : Database
        The state database.
    series_seconds, study_seconds : float
        Quiet period after the last received instance.
    now : datetime, optional
        The current time (tests pass their own).
    hooks : sequence of CompletionHook
        Given each completion after it committed (see :func:`hand_on`).

    Returns
    -------
    SweepResult
        The series and studies this call completed.
    """
    now = now or utcnow()
    with db.session() as session:
        series = _complete(session, Series, now - timedelta(seconds=series_seconds), now)
        studies = _complete(session, Study, now - timedelta(seconds=study_seconds), now)
        for uid in series:
            record(session, AuditKind.SERIES_COMPLETE, subject=uid)
        for uid in studies:
            record(session, AuditKind.STUDY_COMPLETE, subject=uid)
    if series or studies:
        log.info("completed %d series and %d studies", len(series), len(studies))
    hand_on(db, hooks)
    return SweepResult(series=series, studies=studies)


def hand_on(db: Database, hooks: Sequence[CompletionHook]) -> int:
    """Give each completion not handled yet to ``hooks``; returns how many were handled.

    A hook that raises leaves its completion unhandled (logged; the next call retries it) and
    does not hold up the others.
    """
    handled = 0
    for completion in _unhandled(db):
        try:
            actions = [a for a in (hook(db, completion) for hook in hooks) if a is not None]
            with db.session() as session:
                if not _mark_handled(session, completion):
                    continue  # re-opened meanwhile (or another sweeper handled it)
                for action in actions:
                    action(session)
            handled += 1
        except Exception:  # retried at the next sweep
            log.exception(
                "completion not handed on; retried at the next sweep",
                extra={"completion": completion.level.value, "subject": completion.uid},
            )
    return handled


def _uid_column(model: type[Series] | type[Study]) -> object:
    return Series.series_uid if model is Series else Study.study_uid


def _complete(
    session: Session, model: type[Series] | type[Study], cutoff: datetime, now: datetime
) -> list[str]:
    candidates = list(
        session.execute(
            select(model.id, _uid_column(model)).where(  # type: ignore[call-overload]
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


def _unhandled(db: Database) -> list[Completion]:
    """Completions the hooks have not acted on, series before studies, oldest first."""
    found: list[Completion] = []
    with db.session() as session:
        for level, model in _MODELS.items():
            rows = session.execute(
                select(_uid_column(model), model.completions)  # type: ignore[call-overload]
                .where(model.state == CompletionState.COMPLETE, model.handled < model.completions)
                .order_by(model.id)
            )
            found.extend(Completion(level, uid, number) for uid, number in rows)
    return found


def _mark_handled(session: Session, completion: Completion) -> bool:
    """Mark ``completion`` handled unless it re-opened or was handled; whether it was marked."""
    model = _MODELS[completion.level]
    changed = session.execute(
        update(model)
        .where(
            _uid_column(model) == completion.uid,  # type: ignore[arg-type]
            model.state == CompletionState.COMPLETE,
            model.completions == completion.number,
            model.handled < completion.number,
        )
        .values(handled=completion.number)
    )
    return changed.rowcount == 1  # type: ignore[attr-defined]

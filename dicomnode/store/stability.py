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

The timer is the fallback: a completion signal (storage commitment, MPPS, C-FIND confirmation
against the source, a study-level route's required inputs) completes a series or study at once
with :func:`complete_now`, through the same conditional UPDATE, so a signal and the timer never
complete the same opening twice. Each completion records its signal (``completed_by``).
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
from dicomnode.store.models import CompletionSignal, CompletionState, Series, Study, utcnow

__all__ = [
    "Completion",
    "CompletionAction",
    "CompletionHook",
    "Level",
    "SweepResult",
    "complete_now",
    "hand_on",
    "studies_all_complete",
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
        series = _complete(session, Series, now, cutoff=now - timedelta(seconds=series_seconds))
        studies = _complete(session, Study, now, cutoff=now - timedelta(seconds=study_seconds))
        _audit(session, series, studies, CompletionSignal.TIMER)
    hand_on(db, hooks)
    return SweepResult(series=series, studies=studies)


def complete_now(
    db: Database,
    signal: CompletionSignal,
    *,
    series: Sequence[str] = (),
    studies: Sequence[str] = (),
    now: datetime | None = None,
) -> SweepResult:
    """Complete the open ``series`` and ``studies`` at once, judged so by ``signal``.

    Rows that are not open (already complete, or unknown) are left as they are. The caller
    hands the completions on (:func:`hand_on`, or the next sweep does).

    Parameters
    ----------
    db : Database
        The state database.
    signal : CompletionSignal
        What says they are complete (recorded on the rows and in the audit).
    series, studies : sequence of str
        Series and Study Instance UIDs.
    now : datetime, optional
        The current time (tests pass their own).

    Returns
    -------
    SweepResult
        The series and studies this call completed.
    """
    now = now or utcnow()
    with db.session() as session:
        done_series = _complete(session, Series, now, signal=signal, uids=series)
        done_studies = _complete(session, Study, now, signal=signal, uids=studies)
        _audit(session, done_series, done_studies, signal)
    return SweepResult(series=done_series, studies=done_studies)


def studies_all_complete(db: Database, study_uids: Sequence[str]) -> list[str]:
    """Those of ``study_uids`` that are open while every series they hold is complete."""
    if not study_uids:
        return []
    with db.session() as session:
        rows = session.execute(
            select(Study.study_uid, Series.state)
            .join(Series, Series.study_id == Study.id)
            .where(Study.study_uid.in_(study_uids), Study.state == CompletionState.OPEN)
        )
        states: dict[str, set[CompletionState]] = {}
        for uid, state in rows:
            states.setdefault(uid, set()).add(state)
    return [uid for uid, seen in states.items() if seen == {CompletionState.COMPLETE}]


def _audit(
    session: Session, series: list[str], studies: list[str], signal: CompletionSignal
) -> None:
    for uid in series:
        record(session, AuditKind.SERIES_COMPLETE, subject=uid, detail=f"by {signal.value}")
    for uid in studies:
        record(session, AuditKind.STUDY_COMPLETE, subject=uid, detail=f"by {signal.value}")
    if series or studies:
        log.info(
            "completed %d series and %d studies",
            len(series),
            len(studies),
            extra={"signal": signal.value},
        )


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
    session: Session,
    model: type[Series] | type[Study],
    now: datetime,
    *,
    cutoff: datetime | None = None,
    signal: CompletionSignal = CompletionSignal.TIMER,
    uids: Sequence[str] | None = None,
) -> list[str]:
    """Flip open rows to complete: those quiet since ``cutoff``, or those named in ``uids``."""
    which = [model.state == CompletionState.OPEN]
    if cutoff is not None:
        which.append(model.last_received_at <= cutoff)
    if uids is not None:
        if not uids:
            return []
        which.append(_uid_column(model).in_(uids))  # type: ignore[attr-defined]
    candidates = list(
        session.execute(select(model.id, _uid_column(model)).where(*which))  # type: ignore[call-overload]
    )
    done: list[str] = []
    for row_id, uid in candidates:
        changed = session.execute(
            update(model)
            .where(model.id == row_id, *which)
            .values(
                state=CompletionState.COMPLETE,
                completed_at=now,
                completed_by=signal.value,
                completions=model.completions + 1,
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

"""Retention: remove processed studies after ``storage.keep_days``, or earlier when space runs low.

A study is removed only when it is complete and the ``busy`` predicate (supplied by the
composition root: queued/running/failed jobs, undelivered results) says no work remains.
Removal is one transaction that locks the study row, moves its directories into
``<root>/.trash`` and deletes its rows; the files are deleted after the commit. An instance
arriving for the study meanwhile waits for the lock, then starts a new study row and directory,
so nothing received after the decision is lost.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dicomnode.store import files
from dicomnode.store.audit import AuditKind, record
from dicomnode.store.ingest import SUPERSEDED, Store
from dicomnode.store.models import CompletionState, Instance, Series, Study, utcnow

__all__ = ["BusyCheck", "ExtraPaths", "RetentionReport", "TRASH", "sweep_retention"]

log = logging.getLogger(__name__)
TRASH = ".trash"

#: Whether work for the study (by UID) is still pending; runs inside the removal transaction.
BusyCheck = Callable[[Session, str], bool]
#: More paths to delete with a study (e.g. its result files), inside the transaction.
ExtraPaths = Callable[[Session, str], Sequence[Path]]


@dataclass
class RetentionReport:
    """What one retention sweep removed."""

    studies: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    emergency: bool = False


def sweep_retention(
    store: Store,
    *,
    keep_days: float,
    low_water: int,
    busy: BusyCheck = lambda session, uid: False,
    extra_paths: ExtraPaths = lambda session, uid: (),
    now: datetime | None = None,
) -> RetentionReport:
    """Remove expired processed studies, then, while free space is below ``low_water``, the
    oldest processed studies of any age.

    Parameters
    ----------
    store : Store
        The store (its DB holds the studies).
    keep_days : float
        Age (since the last received instance) after which a processed study goes; 0 keeps
        studies forever (only the emergency clean-up removes them).
    low_water : int
        Free bytes below which processed studies are removed oldest first regardless of age.
    busy, extra_paths : callable
        See :data:`BusyCheck` and :data:`ExtraPaths`.
    now : datetime, optional
        The current time (tests).
    """
    now = now or utcnow()
    report = RetentionReport()
    if keep_days > 0:
        for uid in _candidates(store, before=now - timedelta(days=keep_days)):
            _remove(store, uid, busy, extra_paths, report)
    if files.free_bytes(store.root) < low_water:
        report.emergency = True
        for uid in _candidates(store, before=now):
            if files.free_bytes(store.root) >= low_water:
                break
            _remove(store, uid, busy, extra_paths, report)
    if report.studies:
        log.info(
            "retention removed %d studies (%d MB)%s",
            len(report.studies),
            report.bytes_freed // 10**6,
            " to free space" if report.emergency else "",
        )
    return report


def _candidates(store: Store, *, before: datetime) -> list[str]:
    with store.db.session() as session:
        return list(
            session.scalars(
                select(Study.study_uid)
                .where(Study.state == CompletionState.COMPLETE, Study.last_received_at < before)
                .order_by(Study.last_received_at)
            )
        )


def _remove(
    store: Store, uid: str, busy: BusyCheck, extra_paths: ExtraPaths, report: RetentionReport
) -> None:
    trash = store.root / TRASH
    trash.mkdir(exist_ok=True)
    moved: list[tuple[Path, Path]] = []
    doomed: list[Path] = []
    try:
        with store.db.session() as session:
            study = session.scalar(select(Study).where(Study.study_uid == uid).with_for_update())
            if study is None or study.state is not CompletionState.COMPLETE or busy(session, uid):
                return
            stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
            for source in (store.root / uid, store.root / SUPERSEDED / uid):
                if source.is_dir():
                    target = trash / f"{source.parent.name}-{uid}-{stamp}"
                    os.replace(source, target)
                    moved.append((target, source))
            doomed = list(extra_paths(session, uid))
            series_ids = select(Series.id).where(Series.study_id == study.id)
            session.execute(delete(Instance).where(Instance.series_id.in_(series_ids)))
            session.execute(delete(Series).where(Series.study_id == study.id))
            session.execute(delete(Study).where(Study.id == study.id))
            record(session, AuditKind.STUDY_DELETED, subject=uid, detail="retention")
    except BaseException:
        for target, source in reversed(moved):
            os.replace(target, source)
        raise
    store.forget_ids()
    freed = 0
    for path in [t for t, _ in moved] + doomed:
        freed += _size(path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    report.studies.append(uid)
    report.bytes_freed += freed


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

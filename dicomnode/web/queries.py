"""What the web pages show, read from the database (and one stored header per study).

Typed rows for the studies search, the study page, the queue and the audit trail. Full UIDs
everywhere. Patient identifiers come from :mod:`dicomnode.web.identifiers`, never from (or
into) the database or a log.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicomnode.jobs.models import Delivery, DeliveryState, Job, JobResult, JobState
from dicomnode.jobs.timeline import timelines, total_seconds
from dicomnode.store.audit import AuditKind
from dicomnode.store.db import Database
from dicomnode.store.models import AuditEvent, CompletionState, Instance, Series, Study
from dicomnode.web.identifiers import StudyIdentifiers, read_identifiers

__all__ = [
    "AuditFilter",
    "AuditRow",
    "Decision",
    "DeliveryView",
    "JobView",
    "Outcome",
    "QueueView",
    "ResultRef",
    "SeriesView",
    "StudyFilter",
    "StudyPage",
    "StudyRow",
    "StudySearch",
    "audit_trail",
    "queue",
    "search_studies",
    "study_page",
]

#: The most rows one page lists.
MAX_PAGE = 500


def _check_page(limit: int, offset: int) -> None:
    """Refuse a page size outside 1 … MAX_PAGE or a negative offset."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be from 1 to {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be 0 or more, got {offset}")


class Outcome(str, enum.Enum):
    """What became of a study, as the studies list says it."""

    ANALYSED = "analysed"
    FAILED = "failed"
    REFUSED = "refused"
    IN_PROGRESS = "in progress"
    NO_ROUTE = "no route"
    WAITING = "waiting"


def outcome_of(job_states: Iterable[JobState], unrouted: bool) -> Outcome:
    """A study's outcome from its jobs' states and whether a completion matched no route.

    A succeeded job makes it ``analysed``; else a failed or dead one ``failed``; else a
    refused one ``refused``; a queued or running one ``in progress``; without jobs, ``no
    route`` when its (or a series') completion matched none, else ``waiting``.
    """
    states = set(job_states)
    if JobState.SUCCEEDED in states:
        return Outcome.ANALYSED
    if states & {JobState.FAILED, JobState.DEAD}:
        return Outcome.FAILED
    if JobState.REFUSED in states:
        return Outcome.REFUSED
    if states:
        return Outcome.IN_PROGRESS
    return Outcome.NO_ROUTE if unrouted else Outcome.WAITING


@dataclass(frozen=True)
class StudyFilter:
    """The studies search; every field optional. ``patient`` is part of the name or ID."""

    patient: str = ""
    accession: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str = ""
    state: Outcome | None = None
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        _check_page(self.limit, self.offset)

    @property
    def needs_identifiers(self) -> bool:
        """Whether the filter reads headers for every study (not only the shown ones)."""
        return bool(self.patient or self.accession or self.date_from or self.date_to)


@dataclass(frozen=True)
class StudyRow:
    """One study in the list."""

    study_uid: str
    identifiers: StudyIdentifiers
    modalities: tuple[str, ...]
    series_count: int
    instances: int
    state: CompletionState
    last_received_at: dt.datetime
    outcome: Outcome
    results: int


@dataclass(frozen=True)
class StudySearch:
    """A page of the studies search and the number of matches before paging."""

    rows: list[StudyRow]
    total: int
    filter: StudyFilter


def _uid_modalities(session: Session) -> dict[int, tuple[str, ...]]:
    found: dict[int, set[str]] = {}
    for study_id, modality in session.execute(select(Series.study_id, Series.modality)):
        found.setdefault(study_id, set()).add((modality or "").upper())
    return {k: tuple(sorted(m for m in v if m)) for k, v in found.items()}


def _unrouted(session: Session) -> set[str]:
    """Subjects (study or series UIDs) whose newest completion matched no route."""
    rows = session.execute(
        select(AuditEvent.subject, AuditEvent.kind, func.max(AuditEvent.id))
        .where(
            AuditEvent.kind.in_(
                [AuditKind.NO_ROUTE, AuditKind.SERIES_COMPLETE, AuditKind.STUDY_COMPLETE]
            ),
            AuditEvent.subject.is_not(None),
        )
        .group_by(AuditEvent.subject, AuditEvent.kind)
    )
    latest: dict[str, dict[str, int]] = {}
    for subject, kind, last in rows:
        latest.setdefault(str(subject), {})[kind] = last
    return {
        subject
        for subject, kinds in latest.items()
        if kinds.get(AuditKind.NO_ROUTE.value, 0)
        > max(
            kinds.get(AuditKind.SERIES_COMPLETE.value, 0),
            kinds.get(AuditKind.STUDY_COMPLETE.value, 0),
        )
    }


def search_studies(db: Database, store_root: Path, query: StudyFilter) -> StudySearch:
    """Studies matching ``query``, newest (last received) first, one page of them.

    Modality and state are matched on the database; patient, accession and dates on one
    stored header per study (read only when the filter names them, else for the shown page).
    """
    with db.session() as session:
        rows = session.execute(
            select(
                Study.id,
                Study.study_uid,
                Study.state,
                Study.last_received_at,
                func.count(func.distinct(Series.id)),
                func.count(Instance.id),
                func.min(Instance.path),
            )
            .join(Series, Series.study_id == Study.id)
            .outerjoin(Instance, Instance.series_id == Series.id)
            .group_by(Study.id)
            .order_by(Study.last_received_at.desc(), Study.id.desc())
        ).all()
        modalities = _uid_modalities(session)
        series_of: dict[str, list[str]] = {}
        for study_uid, series_uid in session.execute(
            select(Study.study_uid, Series.series_uid).join(Series, Series.study_id == Study.id)
        ):
            series_of.setdefault(study_uid, []).append(series_uid)
        job_states: dict[str, list[JobState]] = {}
        for study_uid, state in session.execute(select(Job.study_uid, Job.state)):
            job_states.setdefault(study_uid, []).append(state)
        results = dict(
            session.execute(
                select(JobResult.study_uid, func.count(JobResult.id)).group_by(JobResult.study_uid)
            ).all()
        )
        unrouted = _unrouted(session)
    wanted_modality = query.modality.strip().upper()
    candidates: list[tuple[Any, Outcome]] = []
    for row in rows:
        if wanted_modality and wanted_modality not in modalities.get(row[0], ()):
            continue
        subjects = [row[1], *series_of.get(row[1], [])]
        outcome = outcome_of(job_states.get(row[1], []), any(s in unrouted for s in subjects))
        if query.state is not None and outcome is not query.state:
            continue
        candidates.append((row, outcome))

    def identifiers(row: Any) -> StudyIdentifiers:
        return read_identifiers(store_root / row[6] if row[6] else None)

    if query.needs_identifiers:
        candidates = [c for c in candidates if _matches(identifiers(c[0]), query)]
    total = len(candidates)
    shown = candidates[query.offset : query.offset + query.limit]
    return StudySearch(
        rows=[
            StudyRow(
                study_uid=row[1],
                identifiers=identifiers(row),
                modalities=modalities.get(row[0], ()),
                series_count=row[4],
                instances=row[5],
                state=row[2],
                last_received_at=row[3],
                outcome=outcome,
                results=int(results.get(row[1], 0)),
            )
            for row, outcome in shown
        ],
        total=total,
        filter=query,
    )


def _matches(ids: StudyIdentifiers, query: StudyFilter) -> bool:
    if query.patient and not ids.matches(query.patient):
        return False
    if query.accession and query.accession.strip().casefold() != ids.accession.casefold():
        return False
    if query.date_from and (ids.study_date is None or ids.study_date < query.date_from):
        return False
    return not (query.date_to and (ids.study_date is None or ids.study_date > query.date_to))


@dataclass(frozen=True)
class Decision:
    """One route's decision on a series, in the words of ``route explain``."""

    route: str
    words: str
    job_id: int | None = None


@dataclass(frozen=True)
class SeriesView:
    """A series of the study page."""

    series_uid: str
    number: int | None
    modality: str
    description: str
    state: CompletionState
    completed_by: str | None
    instances: int
    decisions: list[Decision]


@dataclass(frozen=True)
class JobView:
    """A job with its timeline (stage, ISO time, seconds since the stage before)."""

    id: int
    state: JobState
    route: str
    pipeline: str
    level: str
    subject: str
    attempts: int
    max_attempts: int
    created_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None
    timeline: list[dict[str, Any]]
    latency_seconds: float | None

    @property
    def retryable(self) -> bool:
        """Whether the retry action applies (a dead, failed or refused job)."""
        return self.state in (JobState.DEAD, JobState.FAILED, JobState.REFUSED)

    @property
    def cancellable(self) -> bool:
        """Whether the cancel action applies (waiting to run)."""
        return self.state in (JobState.QUEUED, JobState.FAILED)


@dataclass(frozen=True)
class DeliveryView:
    """One result instance on its way to one destination."""

    id: int
    job_id: int
    destination: str
    state: DeliveryState
    attempts: int
    last_status: str | None
    error: str | None
    sop_instance_uid: str
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None


@dataclass(frozen=True)
class ResultRef:
    """A result instance a job made (its file under the results folder)."""

    id: int
    job_id: int
    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    path: str
    created_at: dt.datetime


@dataclass(frozen=True)
class StudyPage:
    """Everything the study page shows (identifiers read from one stored header)."""

    study_uid: str
    state: CompletionState
    completed_by: str | None
    identifiers: StudyIdentifiers
    outcome: Outcome
    series: list[SeriesView]
    study_decisions: list[Decision]
    jobs: list[JobView]
    deliveries: list[DeliveryView]
    results: list[ResultRef] = field(default_factory=list)


def _no_route_words(detail: str | None) -> list[Decision]:
    """An audit ``routing.no_match`` detail (``route: reason; ...``) as decisions."""
    decisions = []
    for part in (detail or "").split("; "):
        route, sep, why = part.partition(": ")
        if sep and " " not in route:
            decisions.append(Decision(route, f"no route matched: no: {why}"))
        elif part:
            decisions.append(Decision("", f"no route matched: {part}"))
    return decisions


def _latest_no_route(session: Session, subject: str, completed: AuditKind) -> list[Decision]:
    """The no-route decisions of ``subject``'s newest completion (none when a later one, or
    none at all, was recorded)."""
    last: dict[str, AuditEvent] = {}
    for event in session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject == subject, AuditEvent.kind.in_([AuditKind.NO_ROUTE, completed]))
        .order_by(AuditEvent.id)
    ):
        last[event.kind] = event
    miss = last.get(AuditKind.NO_ROUTE.value)
    done = last.get(completed.value)
    if miss is None or (done is not None and done.id > miss.id):
        return []
    return _no_route_words(miss.detail)


def _job_words(job: Job) -> str:
    if job.state is JobState.REFUSED:
        return f"MATCH; job {job.id} refused by the pipeline: {job.error or ''}".rstrip(": ")
    return f"MATCH; job {job.id} {job.state.value}"


def _inputs(job: Job) -> set[str]:
    try:
        return {str(item.get("series_uid")) for item in json.loads(job.inputs or "[]")}
    except (ValueError, AttributeError):
        return set()


def _series_views(session: Session, study: Study, jobs: Sequence[Job]) -> list[SeriesView]:
    counts = dict(
        session.execute(
            select(Instance.series_id, func.count(Instance.id))
            .join(Series, Series.id == Instance.series_id)
            .where(Series.study_id == study.id)
            .group_by(Instance.series_id)
        ).all()
    )
    views = []
    for series in session.scalars(
        select(Series).where(Series.study_id == study.id).order_by(Series.series_number, Series.id)
    ):
        decisions = [
            Decision(job.route, _job_words(job), job.id)
            for job in jobs
            if job.subject == series.series_uid or series.series_uid in _inputs(job)
        ]
        if not decisions:
            decisions = _latest_no_route(session, series.series_uid, AuditKind.SERIES_COMPLETE)
        if not decisions and series.state is CompletionState.OPEN:
            decisions = [Decision("", "waiting: the series is still receiving")]
        views.append(
            SeriesView(
                series_uid=series.series_uid,
                number=series.series_number,
                modality=series.modality or "",
                description=series.description or "",
                state=series.state,
                completed_by=series.completed_by,
                instances=int(counts.get(series.id, 0)),
                decisions=decisions,
            )
        )
    return views


def _job_views(session: Session, jobs: Sequence[Job]) -> list[JobView]:
    stages = timelines(session, [job.id for job in jobs])
    return [
        JobView(
            id=job.id,
            state=job.state,
            route=job.route,
            pipeline=f"{job.pipeline} {job.pipeline_version}",
            level=job.level,
            subject=job.subject,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            created_at=job.created_at,
            finished_at=job.finished_at,
            error=job.error,
            timeline=stages.get(job.id, []),
            latency_seconds=total_seconds(stages.get(job.id, [])),
        )
        for job in jobs
    ]


def _delivery_views(
    session: Session, job_ids: Sequence[int], limit: int, state: DeliveryState | None = None
) -> list[DeliveryView]:
    query = (
        select(Delivery, JobResult.sop_instance_uid)
        .join(JobResult, JobResult.id == Delivery.result_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if job_ids:
        query = query.where(Delivery.job_id.in_(list(job_ids)))
    if state is not None:
        query = query.where(Delivery.state == state)
    return [
        DeliveryView(
            id=d.id,
            job_id=d.job_id,
            destination=d.destination,
            state=d.state,
            attempts=d.attempts,
            last_status=None if d.last_status is None else f"0x{d.last_status:04X}",
            error=d.error,
            sop_instance_uid=sop,
            next_attempt_at=d.run_after if d.state is DeliveryState.PENDING else None,
            delivered_at=d.delivered_at,
        )
        for d, sop in session.execute(query)
    ]


def _result_refs(session: Session, query: Any) -> list[ResultRef]:
    return [
        ResultRef(
            id=r.id,
            job_id=r.job_id,
            sop_instance_uid=r.sop_instance_uid,
            sop_class_uid=r.sop_class_uid,
            series_uid=r.series_uid,
            study_uid=r.study_uid,
            path=r.path,
            created_at=r.created_at,
        )
        for r in session.scalars(query)
    ]


def study_page(db: Database, store_root: Path, study_uid: str) -> StudyPage | None:
    """The study page of ``study_uid``; None for a study the node does not hold."""
    with db.session() as session:
        study = session.scalar(select(Study).where(Study.study_uid == study_uid))
        if study is None:
            return None
        first = session.scalar(
            select(Instance.path)
            .join(Series, Series.id == Instance.series_id)
            .where(Series.study_id == study.id)
            .order_by(Instance.id)
            .limit(1)
        )
        jobs = session.scalars(
            select(Job).where(Job.study_uid == study_uid).order_by(Job.id.desc())
        ).all()
        series = _series_views(session, study, jobs)
        study_decisions = _latest_no_route(session, study_uid, AuditKind.STUDY_COMPLETE)
        unrouted = bool(study_decisions) or any(
            d.words.startswith("no route matched") for s in series for d in s.decisions
        )
        return StudyPage(
            study_uid=study_uid,
            state=study.state,
            completed_by=study.completed_by,
            identifiers=read_identifiers(store_root / first if first else None),
            outcome=outcome_of((j.state for j in jobs), unrouted),
            series=series,
            study_decisions=study_decisions,
            jobs=_job_views(session, jobs),
            deliveries=_delivery_views(session, [j.id for j in jobs], MAX_PAGE) if jobs else [],
            results=_result_refs(
                session,
                select(JobResult)
                .where(JobResult.study_uid == study_uid)
                .order_by(JobResult.job_id.desc(), JobResult.id.desc()),
            ),
        )


def result_ref(db: Database, sop_instance_uid: str) -> ResultRef | None:
    """The result instance with this SOP Instance UID, or None."""
    with db.session() as session:
        found = _result_refs(
            session, select(JobResult).where(JobResult.sop_instance_uid == sop_instance_uid)
        )
    return found[0] if found else None


@dataclass(frozen=True)
class QueueView:
    """Jobs and deliveries by state (newest first, at most ``limit`` of each state)."""

    jobs: dict[JobState, list[JobView]]
    deliveries: dict[DeliveryState, list[DeliveryView]]
    job_counts: dict[JobState, int]
    delivery_counts: dict[DeliveryState, int]


def queue(db: Database, *, limit: int = 100) -> QueueView:
    """The queue page: every job and delivery state with its count and newest rows."""
    with db.session() as session:
        job_counts = dict(
            session.execute(select(Job.state, func.count(Job.id)).group_by(Job.state)).all()
        )
        delivery_counts = dict(
            session.execute(
                select(Delivery.state, func.count(Delivery.id)).group_by(Delivery.state)
            ).all()
        )
        jobs: dict[JobState, list[JobView]] = {}
        for state in JobState:
            rows = session.scalars(
                select(Job).where(Job.state == state).order_by(Job.id.desc()).limit(limit)
            ).all()
            jobs[state] = _job_views(session, rows)
        deliveries: dict[DeliveryState, list[DeliveryView]] = {}
        for dstate in DeliveryState:
            deliveries[dstate] = _delivery_views(session, [], limit, dstate)
    return QueueView(
        jobs=jobs,
        deliveries=deliveries,
        job_counts={s: int(job_counts.get(s, 0)) for s in JobState},
        delivery_counts={s: int(delivery_counts.get(s, 0)) for s in DeliveryState},
    )


@dataclass(frozen=True)
class AuditFilter:
    """The audit page's filter: kind (prefix, e.g. ``job.``), subject UID, text in the
    detail, since when; newest first, paged."""

    kind: str = ""
    subject: str = ""
    text: str = ""
    since: dt.datetime | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        _check_page(self.limit, self.offset)


@dataclass(frozen=True)
class AuditRow:
    """One audit event."""

    id: int
    at: dt.datetime
    kind: str
    subject: str | None
    peer: str | None
    detail: str | None


def audit_trail(db: Database, query: AuditFilter) -> tuple[list[AuditRow], int]:
    """Audit events matching ``query``, newest first, and their number before paging."""
    select_events = select(AuditEvent)
    if query.kind:
        select_events = select_events.where(AuditEvent.kind.startswith(query.kind, autoescape=True))
    if query.subject:
        select_events = select_events.where(AuditEvent.subject == query.subject.strip())
    if query.text:
        select_events = select_events.where(AuditEvent.detail.contains(query.text, autoescape=True))
    if query.since is not None:
        select_events = select_events.where(AuditEvent.at >= query.since)
    with db.session() as session:
        total = session.scalar(select(func.count()).select_from(select_events.subquery())) or 0
        events = session.scalars(
            select_events.order_by(AuditEvent.id.desc()).offset(query.offset).limit(query.limit)
        ).all()
        rows = [AuditRow(e.id, e.at, e.kind, e.subject, e.peer, e.detail) for e in events]
    return rows, int(total)

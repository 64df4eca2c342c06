"""Queueing jobs when series and studies complete: a stability :data:`CompletionHook`.

The hook reads the completed series' headers and asks the pipelines (``check``, up to minutes
in the checker's process) outside any transaction, then returns the write that inserts the
jobs; the sweep commits it together with the mark that the completion was handled (see
:mod:`dicomnode.store.stability`), so a job is queued exactly once per completion, also when
the node dies in between. The idempotency key (route, pipeline and version, input series,
instance-set digest) makes a completion with an unchanged instance set queue nothing new.

Study-level routes with named ``inputs`` start early: when a series completes (by any signal,
the timer included) while its study is still open, the hook matches those routes on the
study's *complete* series and queues the job of each route whose every input selects one
(:meth:`RoutingHook._inputs_ready`). The study itself is not completed by this: other routes
(study-level routes without inputs, or with other inputs) still want the whole study, and a
study completed early would hand them a partial one. When the study completes later, the same
route selects the same series with the same instances, so the job's key is the same and
nothing new is queued; a series that arrived meanwhile and that an input prefers (or a late
instance in a chosen series) makes a new key, as a late arrival does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dicomnode.config.schema import Config, LateArrivals
from dicomnode.headers import read_representative
from dicomnode.jobs.audit import JobAuditKind, record_job
from dicomnode.jobs.checker import CheckResult
from dicomnode.jobs.keys import instance_set_digest, job_key
from dicomnode.jobs.models import Job, JobState, latest_succeeded
from dicomnode.jobs.timeline import add_stages, queued_marks
from dicomnode.pipeline import (
    PipelineInputs,
    SeriesInput,
)
from dicomnode.pipeline.execute import choose_outputs
from dicomnode.routing import Level, Route, SeriesFacts
from dicomnode.store import stability
from dicomnode.store.audit import AuditKind, record
from dicomnode.store.db import Database
from dicomnode.store.models import (
    CompletionState,
    Instance,
    Series,
    SeriesOrigin,
    Study,
    utcnow,
)
from dicomnode.store.stability import Completion, CompletionAction

__all__ = ["NO_HEADER", "NO_ROUTES", "Checker", "JobPlan", "RoutingHook", "outputs_for"]

log = logging.getLogger(__name__)

#: The reason given for a completed series when the config has no routes at all.
NO_ROUTES = "no routes configured"
#: A route's reason when no instance of the completed series has a readable header.
NO_HEADER = "no readable header in the series"

#: ``(pipeline name, inputs) -> CheckResult``: where the hook asks pipelines (see
#: :class:`~dicomnode.jobs.checker.IsolatedChecker`).
Checker = Callable[[str, PipelineInputs], CheckResult]


@dataclass(frozen=True)
class JobPlan:
    """A job about to be queued: a route and the series it selected."""

    route: Route
    study_uid: str
    subject: str
    series: tuple[SeriesInput, ...]
    digest: str

    @property
    def inputs(self) -> PipelineInputs:
        """What the pipeline is given."""
        return PipelineInputs(self.study_uid, self.series)


class _Row(NamedTuple):
    """An instance of a completed series, as the hook reads it."""

    path: str
    calling_ae: str | None
    sop_instance_uid: str
    sha256: str


def outputs_for(route: Route, config: Config, defaults: Sequence[str] = ()) -> list[str]:
    """Output kinds of a route's jobs (:func:`~dicomnode.pipeline.choose_outputs`): the
    route's, else ``pipelines.<name>.outputs`` when set, else the pipeline's
    ``default_outputs`` (``defaults``, empty when unknown)."""
    section = config.pipelines.get(route.pipeline)
    configured = section.chosen_outputs if section is not None else None
    return [o.value for o in choose_outputs(route.outputs, configured, defaults)]


def _only_priors(db: Database, completion: Completion) -> bool:
    """Whether the completed series is a retrieved prior, or every series of the completed
    study is (a study that also holds received series is routed on those alone)."""
    query = select(Series.origin).distinct()
    if completion.level is stability.Level.SERIES:
        query = query.where(Series.series_uid == completion.uid)
    else:
        query = query.join(Study).where(Study.study_uid == completion.uid)
    with db.session() as session:
        origins = set(session.scalars(query))
    return origins == {SeriesOrigin.PRIOR.value}


class RoutingHook:
    """Evaluates the routes on what a sweep completed and queues the jobs.

    Parameters
    ----------
    config : Config
        The node's config (store path, pipelines' options, policies).
    routes : sequence of Route
        Compiled routes.
    checker : callable
        ``(pipeline name, inputs) -> CheckResult``: an
        :class:`~dicomnode.jobs.checker.IsolatedChecker` (pipelines, and torch, stay out of
        this process).
    """

    def __init__(
        self,
        config: Config,
        routes: Sequence[Route],
        *,
        checker: Checker,
    ):
        self.config = config
        self.routes = list(routes)
        self.checker = checker

    def __call__(self, db: Database, completion: Completion) -> CompletionAction | None:
        """Match the routes on ``completion`` and check its jobs (the CompletionHook).

        Runs outside any transaction: the instance rows are read in a short one, then the
        headers are read and the pipelines asked (which may take minutes) with no lock held.
        Returns the write that queues the jobs or, when no route matches, the one that
        records why (:attr:`~dicomnode.store.audit.AuditKind.NO_ROUTE`, see :meth:`_no_match`);
        None when the routes of the completion's level all have their job already
        (``late_arrivals: ignore``), or the config's routes are all of the other level.
        """
        level = Level(completion.level.value)
        if _only_priors(db, completion):
            return None  # retrieved priors complete, but are never routed as new work
        early = self._inputs_ready(db, completion) if level is Level.SERIES else []
        routes = [r for r in self.routes if r.level is level]
        if not routes:
            if early:
                return self._checked(early)
            if self.routes or level is not Level.SERIES:
                return None  # the other level's routes decide (and say when none matches)
            return self._no_match(completion, [("", NO_ROUTES)])
        with db.session() as session:
            listing = self._listing(session, completion)
            routes = [r for r in routes if not self._ignored(session, r, completion.uid)]
        if not routes:
            return self._checked(early) if early else None  # late_arrivals: ignore
        all_facts = [f for f in (self._facts(uid, rows) for uid, rows in listing.items()) if f]
        plans: list[JobPlan] = []
        misses: list[tuple[str, str]] = []
        for route in routes:
            if level is Level.SERIES:
                if not all_facts:
                    misses.append((route.name, NO_HEADER))
                    continue
                facts = all_facts[0]
                series_match = route.match(facts)
                if series_match.matched:
                    plans.append(
                        self._plan(route, facts.study_uid, facts.series_uid, [facts], listing)
                    )
                else:
                    misses.append((route.name, str(series_match.reason)))
                continue
            match = route.match_study(all_facts)
            if match.matched:
                roles = {facts.series_uid: name for name, facts in match.inputs.items()}
                plans.append(
                    self._plan(route, completion.uid, completion.uid, match.series, listing, roles)
                )
            else:
                misses.append((route.name, str(match.reason)))
        if not plans and not early:
            return self._no_match(completion, misses)
        return self._checked([*plans, *early])

    def _checked(self, plans: Sequence[JobPlan]) -> CompletionAction:
        """Ask the pipelines about ``plans`` now; the write that queues their jobs."""
        checked = [(plan, self.checker(plan.route.pipeline, plan.inputs)) for plan in plans]

        def write(session: Session) -> None:
            for plan, result in checked:
                self.queue(session, plan, result)

        return write

    def _inputs_ready(self, db: Database, completion: Completion) -> list[JobPlan]:
        """Jobs of study-level routes with named inputs that a series completion makes ready.

        Only while the series' study is open (once it is complete, its own completion queues
        them): each such route is matched on the study's complete series, and planned when
        every named input selects one.
        """
        early = [r for r in self.routes if r.level is Level.STUDY and r.inputs]
        if not early:
            return []
        with db.session() as session:
            study_uid = session.scalar(
                select(Study.study_uid)
                .join(Series, Series.study_id == Study.id)
                .where(Series.series_uid == completion.uid, Study.state == CompletionState.OPEN)
            )
            if study_uid is None:
                return []
            early = [r for r in early if not self._ignored(session, r, study_uid)]
            if not early:
                return []
            study = Completion(stability.Level.STUDY, study_uid, 0)
            listing = self._listing(session, study, complete_only=True)
        all_facts = [f for f in (self._facts(uid, rows) for uid, rows in listing.items()) if f]
        plans: list[JobPlan] = []
        for route in early:
            match = route.match_study(all_facts) if all_facts else None
            if match is not None and match.matched:
                roles = {facts.series_uid: name for name, facts in match.inputs.items()}
                plans.append(self._plan(route, study_uid, study_uid, match.series, listing, roles))
                log.info(
                    "every input complete: study-level job before the study completes",
                    extra={"route": route.name, "subject": study_uid},
                )
        return plans

    def _no_match(
        self, completion: Completion, misses: Sequence[tuple[str, str]]
    ) -> CompletionAction:
        """Say that ``completion`` matched no route: one INFO line now, one audit row with it.

        ``misses`` pairs each route's name with its first failed condition, the words of
        ``route explain`` (:attr:`~dicomnode.routing.Match.reason`, which hides the values of
        identifying attributes); a route name of ``""`` stands for the reason alone.
        """
        reasons = "; ".join(f"{name}: {why}" if name else why for name, why in misses)
        log.info(
            "no route matched",
            extra={
                "completion": completion.level.value,
                "subject": completion.uid,
                "reasons": reasons,
            },
        )

        def write(session: Session) -> None:
            record(session, AuditKind.NO_ROUTE, subject=completion.uid, detail=reasons[:2000])

        return write

    def _listing(
        self, session: Session, completion: Completion, *, complete_only: bool = False
    ) -> dict[str, list[_Row]]:
        """The instance rows of the completed series, or of every series of the study (only
        the complete ones with ``complete_only``)."""
        query = select(
            Series.series_uid,
            Instance.path,
            Instance.calling_ae,
            Instance.sop_instance_uid,
            Instance.sha256,
        ).join(Series)
        if completion.level is stability.Level.SERIES:
            query = query.where(Series.series_uid == completion.uid)
        else:
            query = query.join(Study).where(
                Study.study_uid == completion.uid, Series.origin != SeriesOrigin.PRIOR.value
            )
        if complete_only:
            query = query.where(Series.state == CompletionState.COMPLETE)
        listing: dict[str, list[_Row]] = {}
        for series_uid, path, calling_ae, sop_uid, sha in session.execute(
            query.order_by(Series.id, Instance.id)
        ):
            listing.setdefault(series_uid, []).append(_Row(path, calling_ae, sop_uid, sha))
        return listing

    def _ignored(self, session: Session, route: Route, subject: str) -> bool:
        """Whether ``late_arrivals: ignore`` skips ``route`` for ``subject`` (it has a job)."""
        return self.config.stability.late_arrivals is LateArrivals.IGNORE and bool(
            session.scalar(
                select(Job.id).where(Job.route == route.name, Job.subject == subject).limit(1)
            )
        )

    def _facts(self, series_uid: str, rows: Sequence[_Row]) -> SeriesFacts | None:
        """Routing facts of a stored series: its representative header and the count.

        The representative is chosen, and unreadable headers skipped, as ``route explain``
        does (:mod:`dicomnode.headers`); the sender is the representative instance's.
        """
        if not rows:
            return None
        senders = {self.config.store_path / row.path: row.calling_ae for row in rows}
        best = read_representative(senders)
        if best is None:  # each unreadable header was logged by exception type only
            log.error("no readable header in a completed series", extra={"series_uid": series_uid})
            return None
        return SeriesFacts(
            best.study_uid, best.series_uid, best.dataset, len(rows), senders[best.path]
        )

    def _plan(
        self,
        route: Route,
        study_uid: str,
        subject: str,
        series: Sequence[SeriesFacts],
        listing: dict[str, list[_Row]],
        roles: dict[str, str] | None = None,
    ) -> JobPlan:
        roles = roles or {}
        inputs: list[SeriesInput] = []
        pairs: list[tuple[str, str]] = []
        for facts in series:
            rows = listing[facts.series_uid]
            pairs.extend((row.sop_instance_uid, row.sha256) for row in rows)
            inputs.append(
                SeriesInput(
                    study_uid=study_uid,
                    series_uid=facts.series_uid,
                    files=tuple(self.config.store_path / row.path for row in rows),
                    modality=facts.modality or None,
                    description=facts.description or None,
                    role=roles.get(facts.series_uid),
                )
            )
        return JobPlan(route, study_uid, subject, tuple(inputs), instance_set_digest(pairs))

    def queue(self, session: Session, plan: JobPlan, checked: CheckResult) -> int | None:
        """Insert the job of ``plan`` unless its key exists; returns the new job's id.

        ``checked`` is the pipeline's answer about the plan's inputs (the checker's, asked
        before the transaction). A refusal is stored as a ``refused`` job with the reason
        (and audited), so ``dicomnode jobs`` shows it.
        """
        route = plan.route
        if self._ignored(session, route, plan.subject):
            return None
        version = checked.version or "unknown"
        state, error = JobState.QUEUED, None
        if checked.refused is not None:
            state, error = JobState.REFUSED, f"refused by {route.pipeline}: {checked.refused}"
        elif checked.problem is not None:
            log.warning(
                "pipeline %s not checked, queued anyway: %s", route.pipeline, checked.problem
            )
        key = job_key(
            route=route.name,
            pipeline=route.pipeline,
            version=version,
            inputs=[(s.series_uid, s.role) for s in plan.series],
            digest=plan.digest,
        )
        predecessor = latest_succeeded(session, route.name, plan.subject)
        now = utcnow()
        values = {
            "key": key,
            "route": route.name,
            "pipeline": route.pipeline,
            "pipeline_version": version,
            "level": route.level.value,
            "study_uid": plan.study_uid,
            "subject": plan.subject,
            "inputs": json.dumps(
                [{"series_uid": s.series_uid, "role": s.role} for s in plan.series]
            ),
            "digest": plan.digest,
            "outputs": json.dumps(outputs_for(route, self.config, checked.default_outputs)),
            "send_to": json.dumps(list(route.send_to)),
            "shadow": route.shadow,
            "priority": route.priority.rank,
            "state": state,
            "attempts": 0,
            "max_attempts": self.config.workers.max_attempts,
            "run_after": now,
            "predecessor_id": predecessor,
            "created_at": now,
            "updated_at": now,
            "finished_at": now if state is JobState.REFUSED else None,
            "error": error,
        }
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        job_id = session.scalar(
            insert(Job).values(**values).on_conflict_do_nothing().returning(Job.id)
        )
        if job_id is None:
            log.info("job exists, nothing queued", extra={"route": route.name, "key": key[:12]})
            return None
        kind = JobAuditKind.JOB_REFUSED if state is JobState.REFUSED else JobAuditKind.JOB_QUEUED
        record_job(
            session,
            kind,
            job_id=job_id,
            subject=plan.subject,
            detail=error or f"route {route.name}, priority {route.priority.value}",
        )
        if state is JobState.QUEUED:
            add_stages(
                session,
                job_id,
                queued_marks(
                    session,
                    level=route.level.value,
                    subject=plan.subject,
                    series_uids=[s.series_uid for s in plan.series],
                    now=now,
                ),
            )
        if state is JobState.REFUSED:
            log.info("job refused", extra={"route": route.name, "job": job_id, "reason": error})
        else:
            log.info("job queued", extra={"route": route.name, "job": job_id})
        return job_id

"""``dicomnode jobs``: the jobs with their delivery counts, as rows and as a table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from dicomnode.jobs.models import Delivery, DeliveryState, Job, JobState
from dicomnode.jobs.timeline import timelines, total_seconds
from dicomnode.routing.schema import Priority
from dicomnode.store.db import Database
from dicomnode.store.models import utcnow
from dicomnode.terminal import printable

__all__ = ["job_rows", "render_jobs", "until"]


def job_rows(db: Database, *, state: str | JobState | None = None) -> list[dict[str, Any]]:
    """Every job (or those in ``state``), oldest first, with delivery counts by state.

    ``next_attempt_at`` is when the job's next pending delivery is due (its backoff ends;
    None when none is pending). ``timeline`` lists the job's stages
    (:func:`dicomnode.jobs.timeline.timelines`: ISO times and seconds since the stage
    before) and ``latency_seconds`` the time from its first stage to its last. Rows hold
    UIDs, names, states and error texts, never patient identifiers.
    """
    with db.session() as session:
        query = select(Job).order_by(Job.id)
        if state is not None:
            query = query.where(Job.state == JobState(state))
        jobs = session.scalars(query).all()
        counts: dict[int, dict[str, int]] = {}
        for job_id, dstate, n in session.execute(
            select(Delivery.job_id, Delivery.state, func.count(Delivery.id)).group_by(
                Delivery.job_id, Delivery.state
            )
        ):
            counts.setdefault(job_id, {})[dstate.value] = n
        next_attempt: dict[int, datetime] = {
            job_id: when
            for job_id, when in session.execute(
                select(Delivery.job_id, func.min(Delivery.run_after))
                .where(Delivery.state == DeliveryState.PENDING)
                .group_by(Delivery.job_id)
            )
        }
        stages = timelines(session, [job.id for job in jobs])
        return [
            {
                "id": job.id,
                "state": job.state.value,
                "route": job.route,
                "priority": Priority.from_rank(job.priority).value,
                "pipeline": f"{job.pipeline} {job.pipeline_version}",
                "level": job.level,
                "subject": job.subject,
                "attempts": job.attempts,
                "max_attempts": job.max_attempts,
                "created_at": job.created_at.isoformat(),
                "finished_at": job.finished_at.isoformat() if job.finished_at else None,
                "deliveries": {
                    s.value: counts.get(job.id, {}).get(s.value, 0) for s in DeliveryState
                },
                "next_attempt_at": _iso(next_attempt.get(job.id)),
                "error": job.error,
                "timeline": stages.get(job.id, []),
                "latency_seconds": total_seconds(stages.get(job.id, [])),
            }
            for job in jobs
        ]


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def until(when: str | None, now: datetime | None = None) -> str:
    """How long until the ISO time ``when``: ``-`` (none), ``now``, ``42s``, ``4m10s``,
    ``2h05m``."""
    if when is None:
        return "-"
    seconds = int((datetime.fromisoformat(when) - (now or utcnow())).total_seconds())
    if seconds <= 0:
        return "now"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def render_jobs(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`job_rows`; deliveries as delivered/pending/dead,
    NEXT: how long until the next pending delivery is tried (``-`` when none is pending),
    TOTAL: seconds from the last instance received to the job's latest stage, and PRIO: the
    job's priority (``stat``, ``high``, ``routine``)."""
    if not rows:
        return "no jobs\n"
    now = utcnow()
    lines = [
        f"{'ID':>6} {'STATE':<9} {'ROUTE':<20} {'TRIES':>5} {'SENT':>4} {'WAIT':>4} {'DEAD':>4} "
        f"{'NEXT':>6} {'TOTAL':>7} {'PRIO':<7} SUBJECT / ERROR"
    ]
    for row in rows:
        d = row["deliveries"]
        waiting = d["pending"] + d["sending"]
        tail = printable(row["subject"])  # in full: two series never look the same
        dead_error = row["error"] if row["state"] in ("failed", "dead", "refused") else None
        if dead_error:
            tail += f"  {printable(dead_error.splitlines()[0])[:100]}"
        lines.append(
            f"{row['id']:>6} {row['state']:<9} {printable(row['route'])[:20]:<20} "
            f"{row['attempts']:>2}/{row['max_attempts']:<2} {d['delivered']:>4} {waiting:>4} "
            f"{d['dead']:>4} {until(row['next_attempt_at'], now):>6} "
            f"{_total(row.get('latency_seconds')):>7} {row['priority']:<7} {tail}"
        )
    return "\n".join(lines) + "\n"


def _total(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"

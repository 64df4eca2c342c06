"""Histograms of the jobs' per-stage latency, observed in the process that serves ``/metrics``.

Stages are written to ``job_stages`` by whichever process did the step: the ``serve``
process (queueing, its worker threads, its exporter) or a ``dicomnode worker`` on another
host. Only ``serve`` exposes ``/metrics``, so :class:`StageMetrics` follows the table there:
every second (and at each scrape) it reads the rows written since its last look and observes
each one once, as the interval from the stage before it, into ordinary Prometheus histograms
(counts only grow; a restart starts them at zero, as for any process metric).

Rows are followed by id. On PostgreSQL ids are taken at insert and committed in any order, so
an id skipped over is looked for again for :data:`GAP_SECONDS` (a transaction that stays open
longer than that is not counted). Labels are stage intervals, pipeline names and completion
signals: never UIDs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from dicomnode.jobs.models import Job, JobStage
from dicomnode.jobs.timeline import Stage, interval, previous
from dicomnode.store.db import Database

__all__ = ["BUCKETS", "GAP_SECONDS", "StageMetrics"]

log = logging.getLogger(__name__)

#: Histogram buckets, seconds: 50 ms to one hour.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: How long an id skipped over (a transaction not yet committed) is looked for again.
GAP_SECONDS = 300.0
#: Rows read per look.
BATCH = 5000


class StageMetrics(Collector):
    """Follows ``job_stages`` and exposes its intervals as histograms.

    ``dicomnode_stage_seconds{stage, pipeline}``: seconds from the stage before to this one
    (``stage`` is the interval, e.g. ``completed_to_queued``; ``written_to_delivered`` once
    per result and destination). ``dicomnode_job_latency_seconds{pipeline}``: last instance
    received to the first result acknowledged by a destination, once per job.
    ``dicomnode_completion_signal_total{signal}``: jobs queued, by the signal that completed
    their inputs.

    Parameters
    ----------
    db : Database
        The state database.
    """

    def __init__(self, db: Database):
        self.db = db
        self.stage_seconds = Histogram(
            "dicomnode_stage_seconds",
            "Seconds from one stage of a job to the next, by interval and pipeline",
            ["stage", "pipeline"],
            buckets=BUCKETS,
            registry=None,
        )
        self.job_latency = Histogram(
            "dicomnode_job_latency_seconds",
            "Seconds from the last instance received to the first result delivered, by pipeline",
            ["pipeline"],
            buckets=BUCKETS,
            registry=None,
        )
        self.signals = Counter(
            "dicomnode_completion_signal",
            "Jobs queued, by the signal that completed their inputs",
            ["signal"],
            registry=None,
        )
        self._lock = threading.Lock()
        self._last_id: int | None = None
        self._gaps: dict[int, float] = {}
        self._failing = False

    def start(self) -> None:
        """Begin after the rows already in the table (they were counted by an earlier run)."""
        with self._lock, self.db.session() as session:
            self._last_id = session.scalar(select(func.max(JobStage.id))) or 0

    def poll(self) -> int:
        """Observe the rows written since the last look; returns how many (never raises)."""
        try:
            with self._lock:
                seen = self._poll()
        except Exception:  # the database is away: the rows are read at the next look
            if not self._failing:  # once per outage, not every second
                log.exception("stage metrics: cannot read the job stages")
            self._failing = True
            return 0
        self._failing = False
        return seen

    def collect(self) -> Iterator[Metric]:
        self.poll()
        for metric in (self.stage_seconds, self.job_latency, self.signals):
            yield from metric.collect()

    def _poll(self) -> int:
        if self._last_id is None:
            return 0
        seen = 0
        while True:
            rows, history, pipelines = self._read()
            self._track_gaps(rows)
            for row in rows:
                self._observe(row, history.get(row.job_id, ()), pipelines.get(row.job_id, ""))
            seen += len(rows)
            if len(rows) < BATCH:
                return seen

    def _read(self) -> tuple[list[Any], dict[int, list[Any]], dict[int, str]]:
        assert self._last_id is not None
        columns = (JobStage.id, JobStage.job_id, JobStage.stage, JobStage.at, JobStage.detail)
        wanted = JobStage.id > self._last_id
        if self._gaps:
            wanted = wanted | JobStage.id.in_(sorted(self._gaps)[:1000])
        with self.db.session() as session:
            rows = list(
                session.execute(select(*columns).where(wanted).order_by(JobStage.id).limit(BATCH))
            )
            job_ids = sorted({row.job_id for row in rows})
            history: dict[int, list[Any]] = {}
            pipelines: dict[int, str] = {}
            for start in range(0, len(job_ids), 500):
                chunk = job_ids[start : start + 500]
                for row in session.execute(select(*columns).where(JobStage.job_id.in_(chunk))):
                    history.setdefault(row.job_id, []).append(row)
                query = select(Job.id, Job.pipeline).where(Job.id.in_(chunk))
                pipelines.update((job_id, name) for job_id, name in session.execute(query))
        return rows, history, pipelines

    def _track_gaps(self, rows: Sequence[Any]) -> None:
        """Remember ids skipped over; forget those found and those looked for too long."""
        assert self._last_id is not None
        now = time.monotonic()
        ids = {row.id for row in rows}
        for found in ids & self._gaps.keys():
            del self._gaps[found]
        top = max(ids, default=self._last_id)
        if top > self._last_id:
            for missing in range(self._last_id + 1, top):
                if missing not in ids and len(self._gaps) < 10_000:
                    self._gaps[missing] = now
            self._last_id = top
        for old in [gap for gap, since in self._gaps.items() if now - since > GAP_SECONDS]:
            del self._gaps[old]

    def _observe(self, row: Any, history: Sequence[Any], pipeline: str) -> None:
        try:
            stage = Stage(row.stage)
        except ValueError:  # a stage of a newer version of the node
            return
        if stage is Stage.COMPLETED:
            self.signals.labels(row.detail or "unknown").inc()
        before = previous(stage)
        name = interval(stage)
        if before is None or name is None:
            return
        start = _latest(history, before, row.at)
        if start is not None:
            self.stage_seconds.labels(name, pipeline).observe(_seconds(start, row.at))
        if stage is Stage.DELIVERED and not any(
            other.stage == Stage.DELIVERED.value and other.id < row.id for other in history
        ):
            received = _latest(history, Stage.RECEIVED, row.at)
            if received is not None:
                self.job_latency.labels(pipeline).observe(_seconds(received, row.at))


def _latest(history: Sequence[Any], stage: Stage, until: datetime) -> datetime | None:
    """The latest time of ``stage`` in ``history`` not after ``until`` (else its earliest)."""
    times = [row.at for row in history if row.stage == stage.value]
    if not times:
        return None
    before = [at for at in times if at <= until]
    return max(before) if before else min(times)


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())

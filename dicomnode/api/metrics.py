"""Prometheus metrics: SCP counters in this process, queue state read from the database.

Job, delivery and series figures come from the database at scrape time, so they are the same
whichever process (or host) ran the work. Labels are states, outcomes, statuses and pipeline
names: never UIDs or patient data.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from dicomnode.net.processes import ScpProcesses

from dicomnode.jobs.models import CLAIMABLE, Delivery, DeliveryState, Job, JobState
from dicomnode.net.receive import ScpObserver
from dicomnode.notify.models import Notification, NotificationState
from dicomnode.routing.schema import Priority
from dicomnode.store.db import Database
from dicomnode.store.models import CompletionState, Series

__all__ = ["NodeMetrics", "ScpProcessCollector", "StateCollector"]

log = logging.getLogger(__name__)


class NodeMetrics(ScpObserver):
    """The node's metrics registry; also the SCP's observer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.instances = Counter(
            "dicomnode_instances_received",
            "Instances answered with Success, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "dicomnode_received_bytes", "Bytes of instances stored", registry=self.registry
        )
        self.associations = Counter(
            "dicomnode_associations",
            "Association requests, by result",
            ["result"],
            registry=self.registry,
        )
        self.security_alerts = Counter(
            "dicomnode_security_alerts",
            "Security alerts: rejected associations, refused TLS handshakes, oversized PDUs",
            registry=self.registry,
        )
        self.failures = Counter(
            "dicomnode_store_failures",
            "C-STOREs answered with a failure, by DIMSE status",
            ["status"],
            registry=self.registry,
        )
        for outcome in ("stored", "duplicate", "superseded"):
            self.instances.labels(outcome)
        for result in ("accepted", "rejected"):
            self.associations.labels(result)

    def association(self, *, accepted: bool) -> None:
        self.associations.labels("accepted" if accepted else "rejected").inc()

    def stored(self, *, outcome: str, size: int) -> None:
        self.instances.labels(outcome).inc()
        if outcome != "duplicate":
            self.bytes.inc(size)

    def store_failed(self, *, status: int) -> None:
        self.failures.labels(f"0x{status:04X}").inc()

    def security_alert(self) -> None:
        self.security_alerts.inc()


class ScpProcessCollector(Collector):
    """The SCP processes (``node.processes`` above 1): how many listen, by index with their
    process id, and how many were restarted."""

    def __init__(self, processes: ScpProcesses):
        self.processes = processes

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily(
            "dicomnode_scp_process_up",
            "SCP processes: 1 listening, 0 down or restarting, by index and process id",
            labels=["index", "pid"],
        )
        for child in self.processes.status():
            up.add_metric([str(child.index), str(child.pid)], 1.0 if child.ready else 0.0)
        yield up
        yield CounterMetricFamily(
            "dicomnode_scp_process_restarts",
            "SCP processes restarted after they ended",
            value=self.processes.restarts,
        )


class StateCollector(Collector):
    """Series, jobs, deliveries and notifications by state, waiting jobs by priority, and
    pipeline run times, from the database."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily | SummaryMetricFamily]:
        durations = SummaryMetricFamily(
            "dicomnode_pipeline_seconds",
            "Run time of succeeded jobs (claim to finish), by pipeline",
            labels=["pipeline"],
        )
        try:
            with self.db.session() as session:
                series, jobs, deliveries, notes = (
                    _by_state(session, model) for model in (Series, Job, Delivery, Notification)
                )
                waiting = dict(
                    session.execute(
                        select(Job.priority, func.count(Job.id))
                        .where(CLAIMABLE)
                        .group_by(Job.priority)
                    ).all()
                )
                finished = session.execute(
                    select(Job.pipeline, Job.started_at, Job.finished_at).where(
                        Job.state == JobState.SUCCEEDED,
                        Job.started_at.is_not(None),
                        Job.finished_at.is_not(None),
                    )
                ).all()
        except Exception:  # a scrape must not fail the node; the gap shows in Prometheus
            log.exception("metrics: cannot read the database")
            return
        totals: dict[str, tuple[int, float]] = {}
        for pipeline, started, ended in finished:
            if started is None or ended is None:
                continue
            count, total = totals.get(pipeline, (0, 0.0))
            totals[pipeline] = (count + 1, total + (ended - started).total_seconds())
        for pipeline, (count, total) in sorted(totals.items()):
            durations.add_metric([pipeline], count_value=count, sum_value=total)
        yield _gauge("dicomnode_series", "Series by state", CompletionState, series)
        yield _gauge("dicomnode_jobs", "Jobs by state", JobState, jobs)
        yield _gauge(
            "dicomnode_deliveries", "Result deliveries by state", DeliveryState, deliveries
        )
        queued = GaugeMetricFamily(
            "dicomnode_jobs_waiting",
            "Jobs waiting for a worker (queued, or failed and to be retried), by priority",
            labels=["priority"],
        )
        for priority in Priority:
            queued.add_metric([priority.value], waiting.get(priority.rank, 0))
        yield queued
        yield _gauge(
            "dicomnode_notifications", "Webhook notifications by state", NotificationState, notes
        )
        yield durations


def _by_state(
    session: Session, model: type[Series] | type[Job] | type[Delivery] | type[Notification]
) -> dict[Any, int]:
    """Rows of ``model`` counted by their ``state`` column."""
    rows = session.execute(select(model.state, func.count(model.id)).group_by(model.state))
    return {state: count for state, count in rows}


def _gauge(
    name: str, doc: str, states: type[enum.Enum], counts: dict[Any, int]
) -> GaugeMetricFamily:
    """A gauge with one sample per member of ``states`` (0 where ``counts`` has none)."""
    gauge = GaugeMetricFamily(name, doc, labels=["state"])
    for state in states:
        gauge.add_metric([state.value], counts.get(state, 0))
    return gauge

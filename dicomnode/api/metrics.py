"""Prometheus metrics: SCP counters in this process, queue state read from the database.

Job, delivery and series figures come from the database at scrape time, so they are the same
whichever process (or host) ran the work. Labels are states, outcomes, statuses and pipeline
names: never UIDs or patient data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from dicomnode.jobs.models import Delivery, DeliveryState, Job, JobState
from dicomnode.net.scp import ScpObserver
from dicomnode.store.db import Database
from dicomnode.store.models import CompletionState, Series

__all__ = ["NodeMetrics", "StateCollector"]

log = logging.getLogger(__name__)


class NodeMetrics(ScpObserver):
    """The node's metrics registry; also the SCP's observer."""

    def __init__(self, db: Database | None = None):
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
        if db is not None:
            self.registry.register(StateCollector(db))

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


class StateCollector(Collector):
    """Series, jobs and deliveries by state, and pipeline run times, from the database."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily | SummaryMetricFamily]:
        series = GaugeMetricFamily("dicomnode_series", "Series by state", labels=["state"])
        jobs = GaugeMetricFamily("dicomnode_jobs", "Jobs by state", labels=["state"])
        deliveries = GaugeMetricFamily(
            "dicomnode_deliveries", "Result deliveries by state", labels=["state"]
        )
        durations = SummaryMetricFamily(
            "dicomnode_pipeline_seconds",
            "Run time of succeeded jobs (claim to finish), by pipeline",
            labels=["pipeline"],
        )
        try:
            with self.db.session() as session:
                by_series = dict(
                    session.execute(
                        select(Series.state, func.count(Series.id)).group_by(Series.state)
                    ).all()
                )
                by_job = dict(
                    session.execute(select(Job.state, func.count(Job.id)).group_by(Job.state)).all()
                )
                by_delivery = dict(
                    session.execute(
                        select(Delivery.state, func.count(Delivery.id)).group_by(Delivery.state)
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
        for state in CompletionState:
            series.add_metric([state.value], by_series.get(state, 0))
        for jstate in JobState:
            jobs.add_metric([jstate.value], by_job.get(jstate, 0))
        for dstate in DeliveryState:
            deliveries.add_metric([dstate.value], by_delivery.get(dstate, 0))
        totals: dict[str, tuple[int, float]] = {}
        for pipeline, started, ended in finished:
            if started is None or ended is None:
                continue
            count, total = totals.get(pipeline, (0, 0.0))
            totals[pipeline] = (count + 1, total + (ended - started).total_seconds())
        for pipeline, (count, total) in sorted(totals.items()):
            durations.add_metric([pipeline], count_value=count, sum_value=total)
        yield from (series, jobs, deliveries, durations)

"""Workers: threads that claim jobs and run each in their own inference child process.

A worker thread holds the job's lease while its child runs the pipeline, renewing it every
``workers.heartbeat_seconds``. The child's answer decides the job's fate: results are
persisted (with their deliveries) in one transaction, a failure is retried with backoff, a
refusal is final. A child that dies (crash, ``os._exit``, killed by the kernel) fails the
job and is replaced by a fresh one; so is a child that ran past ``workers.job_timeout``.

The child starts with the first job (an idle node holds no torch) and stays warm, with its
models, for ``workers.keep_warm`` seconds after the last one; then it exits.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from dicomnode.config.schema import Config
from dicomnode.jobs.messages import OutcomeKind, RunOutcome, RunRequest
from dicomnode.jobs.models import JobResult, JobState
from dicomnode.jobs.priors import gather_priors
from dicomnode.jobs.process import ChildDied, ChildProcess
from dicomnode.jobs.queue import (
    Backoff,
    ClaimedJob,
    ResultRecord,
    claim,
    fail,
    heartbeat,
    release,
    succeed,
)
from dicomnode.jobs.timeline import Stage, StageMark
from dicomnode.pipeline.contract import PipelineInputs, SeriesInput
from dicomnode.pipeline.registry import PipelineRegistry, PipelineUnavailable
from dicomnode.store.db import Database
from dicomnode.store.models import Instance, Series

if TYPE_CHECKING:
    from dicomnode.notify.outbox import Outbox
    from dicomnode.notify.summary import FindingsSummary

__all__ = ["Worker", "WorkerPool", "results_root"]

log = logging.getLogger(__name__)


def results_root(config: Config) -> Path:
    """Directory of result files: ``<data_dir>/results`` (one folder per job)."""
    return config.data_dir / "results"


class Worker(threading.Thread):
    """One worker: claim, run in the child, record; until ``stop`` is set.

    Parameters
    ----------
    db : Database
        The state database (the queue).
    config : Config
        The node's config.
    index : int
        Number of the worker in its process (for the lease owner name).
    stop : threading.Event
        Set to stop after (or abandon) the current job.
    on_success : callable, optional
        Called with the job id after results were persisted (wakes the exporter).
    outbox : Outbox, optional
        Where job outcomes are told to the webhooks (``notify:``), in the outcome's
        transaction.
    """

    def __init__(
        self,
        db: Database,
        config: Config,
        index: int,
        stop: threading.Event,
        on_success: Callable[[int], None] | None = None,
        wake: threading.Event | None = None,
        outbox: Outbox | None = None,
    ):
        super().__init__(name=f"dicomnode-worker-{index}", daemon=True)
        self.outbox = outbox
        self.wake = wake or stop  # set when jobs were queued (or to stop): claim at once
        self.db = db
        self.config = config
        self.owner = f"{socket.gethostname()}:{os.getpid()}:w{index}"[:96]
        self.stop = stop
        self.on_success = on_success
        self.child = ChildProcess()
        workers = config.workers
        self.backoff = Backoff(workers.backoff_seconds, workers.max_backoff_seconds)
        self.class_paths = config.class_paths
        self.registry = PipelineRegistry(self.class_paths)

    def run(self) -> None:
        """The worker loop (never raises: a failed step is logged and retried)."""
        poll = self.config.workers.poll_seconds
        while not self.stop.is_set():
            try:
                job = claim(self.db, self.owner, lease_seconds=self.config.workers.lease_seconds)
            except Exception:  # DB unreachable: wait and try again
                log.exception("claiming a job failed")
                self.stop.wait(poll)
                continue
            if job is None:
                self._cool()
                self.wake.wait(poll)
                if not self.stop.is_set():
                    self.wake.clear()
                continue
            try:
                self.execute(job)
            except Exception:  # a DB error while recording: the lease expires, job re-queued
                log.exception("job %s: recording its outcome failed", job.id)
        self.child.stop(grace=2.0)

    def _cool(self) -> None:
        """Stop the child once it has been idle for ``workers.keep_warm`` seconds."""
        keep_warm = self.config.workers.keep_warm
        if self.child.alive and time.monotonic() - self.child.last_used >= keep_warm:
            log.info("inference process idle for %g s: stopping it", keep_warm)
            self.child.stop(grace=5.0)

    def execute(self, job: ClaimedJob) -> None:
        """Run one claimed job to its outcome."""
        log.info(
            "job started", extra={"job": job.id, "pipeline": job.pipeline, "study": job.study_uid}
        )
        started = time.monotonic()
        request = self._request(job)
        request = self._with_priors(job, request)
        try:
            self.child.submit(request)
            outcome = self._await(job, time.monotonic())
        except ChildDied as exc:
            self.child.stop()
            if exc.starting:  # not the job's fault: hand it back, try again later
                log.error("cannot start the inference process: %s", exc)
                release(self.db, job)
                self.stop.wait(max(self.config.workers.poll_seconds, 5.0))
            else:
                fail(self.db, job, str(exc), backoff=self.backoff, notify=self.outbox)
            return
        if outcome is None:  # lease lost, stopping, or timed out: the child was stopped
            return
        if outcome.restart:
            self.child.stop()
        if outcome.kind == OutcomeKind.OK:
            records = [
                ResultRecord(
                    r.sop_instance_uid,
                    r.sop_class_uid,
                    r.series_uid,
                    r.study_uid,
                    f"{job.id}/{r.name}",
                )
                for r in outcome.results
            ]
            stages = [
                StageMark(Stage(name), datetime.fromtimestamp(at, UTC), None, job.attempt)
                for name, at in outcome.stages
            ]
            findings = _summary(results_root(self.config) / str(job.id))
            if succeed(
                self.db,
                job,
                records,
                repaired=outcome.repaired,
                stages=stages,
                findings=findings,
                notify=self.outbox,
            ):
                log.info(
                    "job succeeded",
                    extra={
                        "job": job.id,
                        "results": len(records),
                        "seconds": round(time.monotonic() - started, 3),
                    },
                )
                if self.on_success is not None:
                    self.on_success(job.id)
        elif outcome.kind == OutcomeKind.REFUSED:
            fail(
                self.db,
                job,
                f"refused: {outcome.error}",
                backoff=self.backoff,
                state=JobState.REFUSED,
            )
        else:
            # The input's fault (an unrepairable header): dead at once, not retried.
            state = JobState.DEAD if outcome.permanent else None
            fail(self.db, job, outcome.error, backoff=self.backoff, state=state, notify=self.outbox)

    def _await(self, job: ClaimedJob, started: float) -> RunOutcome | None:
        workers = self.config.workers
        beat = workers.heartbeat_seconds
        next_beat = time.monotonic() + beat
        while True:
            outcome = self.child.wait(min(0.5, beat))
            if outcome is not None:
                assert isinstance(outcome, RunOutcome)
                return outcome
            now = time.monotonic()
            if not self.child.ready:  # start-up has its own limit; the job's time starts now
                started = now
            if self.stop.is_set():
                self.child.stop()
                release(self.db, job)
                return None
            if now - started > workers.job_timeout:
                self.child.stop()
                fail(
                    self.db,
                    job,
                    f"timed out after {workers.job_timeout:g} s",
                    backoff=self.backoff,
                    notify=self.outbox,
                )
                return None
            if now >= next_beat:
                next_beat = now + beat
                if not heartbeat(self.db, job, lease_seconds=workers.lease_seconds):
                    log.warning("job %s: lease lost; abandoning it", job.id)
                    self.child.stop()
                    return None

    def _with_priors(self, job: ClaimedJob, request: RunRequest) -> RunRequest:
        """``request`` with the job's priors, when its route has a ``priors`` policy and its
        pipeline uses them (:mod:`dicomnode.jobs.priors`; bounded by ``priors.timeout``)."""
        spec = next((r for r in self.config.routes if r.name == job.route), None)
        if spec is None or spec.priors is None:
            return request
        try:
            pipeline = self.registry.get(job.pipeline)
        except PipelineUnavailable:
            return request  # the child says so when it runs the job
        uses = pipeline.uses_priors
        if not uses:
            log.info(
                "route has a priors policy, its pipeline does not use priors: none retrieved",
                extra={"job": job.id, "route": job.route, "pipeline": job.pipeline},
            )
            return request
        outcome = gather_priors(
            config=self.config,
            db=self.db,
            route=job.route,
            policy=spec.priors,
            current=request.inputs.series,
            tick=lambda: heartbeat(self.db, job, lease_seconds=self.config.workers.lease_seconds),
            tick_seconds=self.config.workers.heartbeat_seconds,
            pipeline=pipeline.name,
        )
        inputs = dataclasses.replace(
            request.inputs, priors=outcome.priors, priors_note=outcome.note
        )
        return dataclasses.replace(request, inputs=inputs)

    def _request(self, job: ClaimedJob) -> RunRequest:
        store = self.config.store_path
        series = []
        with self.db.session() as session:
            for item in job.inputs:
                rows = session.execute(
                    select(Instance.path, Series.modality, Series.description)
                    .join(Series)
                    .where(Series.series_uid == item["series_uid"])
                    .order_by(Instance.id)
                ).all()
                series.append(
                    SeriesInput(
                        study_uid=job.study_uid,
                        series_uid=str(item["series_uid"]),
                        files=tuple(store / r[0] for r in rows),
                        modality=rows[0][1] if rows else None,
                        description=rows[0][2] if rows else None,
                        role=item.get("role"),
                    )
                )
            predecessors = []
            if job.predecessor_id is not None:
                predecessors = [
                    (r.study_uid, r.series_uid, r.sop_class_uid, r.sop_instance_uid)
                    for r in session.scalars(
                        select(JobResult).where(JobResult.job_id == job.predecessor_id)
                    )
                ]
        section = self.config.pipelines.get(job.pipeline)
        return RunRequest(
            job_id=job.id,
            pipeline=job.pipeline,
            class_paths=self.class_paths,
            options=dict(section.options) if section else {},
            inputs=PipelineInputs(job.study_uid, tuple(series)),
            outputs=tuple(job.outputs),
            uid_root=self.config.node.uid_root,
            results_dir=str(results_root(self.config) / str(job.id)),
            predecessors=tuple(predecessors),
            device=self.config.workers.device.value,
        )


def _summary(directory: Path) -> FindingsSummary | None:
    """The findings summary of a job's results directory (read here, in the worker thread,
    before the success transaction)."""
    from dicomnode.notify.summary import FindingsSummary

    return FindingsSummary.from_directory(directory)


class WorkerPool:
    """``workers.count`` worker threads sharing one stop event."""

    def __init__(
        self,
        db: Database,
        config: Config,
        *,
        count: int | None = None,
        on_success: Callable[[int], None] | None = None,
        outbox: Outbox | None = None,
    ):
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        n = config.workers.count if count is None else count
        self.workers = [
            Worker(db, config, i, self.stop_event, on_success, wake=self.wake_event, outbox=outbox)
            for i in range(n)
        ]

    def wake(self) -> None:
        """Tell idle workers that jobs were queued (they claim now instead of at their poll)."""
        self.wake_event.set()

    def start(self) -> None:
        """Start every worker thread."""
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 10) -> None:
        """Stop the workers; a running job is handed back to the queue."""
        self.stop_event.set()
        self.wake_event.set()
        for worker in self.workers:
            worker.join(timeout)

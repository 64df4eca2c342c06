"""Workers: threads that claim jobs and run each in their own long-lived child process.

A worker thread holds the job's lease while its child runs the pipeline, renewing it every
``workers.heartbeat_seconds``. The child's answer decides the job's fate: results are
persisted (with their deliveries) in one transaction, a failure is retried with backoff, a
refusal is final. A child that dies (crash, ``os._exit``, killed by the kernel) fails the
job and is replaced by a fresh one; so is a child that ran past ``workers.job_timeout``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from sqlalchemy import select

from dicomnode.config.schema import Config
from dicomnode.jobs.child import READY, ChildOutcome, JobSpec, OutcomeKind, child_main
from dicomnode.jobs.models import JobResult, JobState
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
from dicomnode.store.db import Database
from dicomnode.store.models import Instance, Series

__all__ = ["ChildProcess", "Worker", "WorkerPool", "results_root"]

log = logging.getLogger(__name__)
_STARTUP_SECONDS = 120.0


def results_root(config: Config) -> Path:
    """Directory of result files: ``<data_dir>/results`` (one folder per job)."""
    return config.data_dir / "results"


class ChildProcess:
    """A spawned inference child and the pipe to it."""

    def __init__(self) -> None:
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def ensure(self) -> None:
        """Start the child unless it runs."""
        if self._proc is not None and self._proc.is_alive():
            return
        self.stop()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=child_main,
            args=(child, logging.getLogger("dicomnode").getEffectiveLevel()),
            daemon=True,
            name="dicomnode-inference",
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if not parent.poll(_STARTUP_SECONDS):
            self.stop()
            raise ChildDied(None, f"inference process not ready after {_STARTUP_SECONDS} s")
        try:
            ready = parent.recv()
        except (EOFError, OSError):
            ready = None
        if ready != READY:
            exitcode = proc.exitcode
            self.stop()
            raise ChildDied(exitcode, "inference process failed to start")

    @property
    def pid(self) -> int | None:
        """Process id of the child, if started."""
        return None if self._proc is None else self._proc.pid

    def submit(self, spec: JobSpec) -> None:
        """Send one job to the child."""
        self.ensure()
        assert self._conn is not None
        self._conn.send(spec)

    def wait(self, timeout: float) -> ChildOutcome | None:
        """The child's answer, or None when none came within ``timeout``.

        Raises
        ------
        ChildDied
            The child exited without answering.
        """
        assert self._conn is not None and self._proc is not None
        try:
            if self._conn.poll(timeout):
                outcome = self._conn.recv()
                assert isinstance(outcome, ChildOutcome)
                return outcome
        except (EOFError, OSError):
            pass
        else:
            if self._proc.is_alive():
                return None
        self._proc.join(5)
        raise ChildDied(self._proc.exitcode)

    def stop(self) -> None:
        """Kill the child (if any) and close the pipe."""
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._proc = self._conn = None


class ChildDied(Exception):  # noqa: N818 - internal signal, never leaves this module
    """The inference child exited while running a job (or could not start)."""

    def __init__(self, exitcode: int | None, message: str | None = None):
        self.exitcode = exitcode
        super().__init__(message or f"inference process died (exit code {exitcode})")


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
    """

    def __init__(
        self,
        db: Database,
        config: Config,
        index: int,
        stop: threading.Event,
        on_success: Callable[[int], None] | None = None,
        wake: threading.Event | None = None,
    ):
        super().__init__(name=f"dicomnode-worker-{index}", daemon=True)
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

    def run(self) -> None:
        """The worker loop (never raises: a failed step is logged and retried)."""
        poll = self.config.workers.poll_seconds
        while not self.stop.is_set():
            try:
                self.child.ensure()  # a ready child before claiming: its start holds no lease
            except (OSError, ChildDied):
                log.exception("cannot start the inference process")
                self.stop.wait(max(poll, 5.0))
                continue
            try:
                job = claim(self.db, self.owner, lease_seconds=self.config.workers.lease_seconds)
            except Exception:  # DB unreachable: wait and try again
                log.exception("claiming a job failed")
                self.stop.wait(poll)
                continue
            if job is None:
                self.wake.wait(poll)
                if not self.stop.is_set():
                    self.wake.clear()
                continue
            try:
                self.execute(job)
            except Exception:  # a DB error while recording: the lease expires, job re-queued
                log.exception("job %s: recording its outcome failed", job.id)
        self.child.stop()

    def execute(self, job: ClaimedJob) -> None:
        """Run one claimed job to its outcome."""
        log.info(
            "job started", extra={"job": job.id, "pipeline": job.pipeline, "study": job.study_uid}
        )
        started = time.monotonic()
        spec = self._spec(job)
        try:
            self.child.submit(spec)
            outcome = self._await(job, time.monotonic())
        except ChildDied as exc:
            self.child.stop()
            fail(self.db, job, str(exc), backoff=self.backoff)
            return
        if outcome is None:  # lease lost, stopping, or timed out: the child was stopped
            return
        if outcome.restart:
            self.child.stop()
        if outcome.kind == OutcomeKind.OK:
            records = [
                ResultRecord(sop, cls, series, study, f"{job.id}/{name}")
                for sop, cls, series, study, name in outcome.results
            ]
            if succeed(self.db, job, records):
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
            fail(self.db, job, outcome.error, backoff=self.backoff)

    def _await(self, job: ClaimedJob, started: float) -> ChildOutcome | None:
        workers = self.config.workers
        beat = workers.heartbeat_seconds
        next_beat = time.monotonic() + beat
        while True:
            outcome = self.child.wait(min(0.5, beat))
            if outcome is not None:
                return outcome
            now = time.monotonic()
            if self.stop.is_set():
                self.child.stop()
                release(self.db, job)
                return None
            if now - started > workers.job_timeout:
                self.child.stop()
                fail(
                    self.db, job, f"timed out after {workers.job_timeout:g} s", backoff=self.backoff
                )
                return None
            if now >= next_beat:
                next_beat = now + beat
                if not heartbeat(self.db, job, lease_seconds=workers.lease_seconds):
                    log.warning("job %s: lease lost; abandoning it", job.id)
                    self.child.stop()
                    return None

    def _spec(self, job: ClaimedJob) -> JobSpec:
        store = self.config.store_path
        inputs = []
        with self.db.session() as session:
            for item in job.inputs:
                rows = session.execute(
                    select(Instance.path, Series.modality, Series.description)
                    .join(Series)
                    .where(Series.series_uid == item["series_uid"])
                    .order_by(Instance.id)
                ).all()
                inputs.append(
                    {
                        "series_uid": item["series_uid"],
                        "role": item.get("role"),
                        "files": [str(store / r[0]) for r in rows],
                        "modality": rows[0][1] if rows else None,
                        "description": rows[0][2] if rows else None,
                    }
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
        return JobSpec(
            job_id=job.id,
            pipeline=job.pipeline,
            class_paths=self.class_paths,
            options=dict(section.options) if section else {},
            study_uid=job.study_uid,
            inputs=inputs,
            outputs=job.outputs,
            uid_root=self.config.node.uid_root,
            results_dir=str(results_root(self.config) / str(job.id)),
            predecessors=predecessors,
            device=self.config.workers.device.value,
        )


class WorkerPool:
    """``workers.count`` worker threads sharing one stop event."""

    def __init__(
        self,
        db: Database,
        config: Config,
        *,
        count: int | None = None,
        on_success: Callable[[int], None] | None = None,
    ):
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        n = config.workers.count if count is None else count
        self.workers = [
            Worker(db, config, i, self.stop_event, on_success, wake=self.wake_event)
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

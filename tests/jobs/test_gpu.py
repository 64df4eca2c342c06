"""On a CUDA machine: a real CUDA out-of-memory error in a model fails only that job.

Marked ``gpu``: deselected by default (CI has no GPU); run on a GPU machine with
``pytest -m gpu tests/jobs/test_gpu.py``. The worker's child resolves ``device: auto`` to CUDA, an
out-of-memory error fails the job (to be retried) and replaces the child, whose successor runs
the next job on the GPU.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from dicomnode.jobs import Job, JobState, Worker
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest

pytestmark = pytest.mark.gpu


def test_cuda_oom_fails_the_job_and_replaces_the_child(tmp_path):
    runlog = tmp_path / "runs.log"
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        workers={"device": "auto", "max_attempts": 1},
        pipelines={"toy": {"class": "testkit.toy_pipeline:ToyPipeline", "runlog": str(runlog)}},
    )
    db = open_database(cfg.database_url)
    store = Store(cfg.store_path, db, min_free=0)
    oom, ok = specs("gpu", 2)
    ingest(store, write_series(oom, tmp_path / "a", description="TOY:cuda-oom"))
    complete_all(db, cfg)
    stop = threading.Event()
    worker = Worker(db, cfg, 0, stop)
    worker.start()
    try:
        first = _wait(db, 1)
        assert worker.child.pid is None  # stopped after the out-of-memory error
        ingest(store, write_series(ok, tmp_path / "b", description="TOY:cuda"))
        complete_all(db, cfg)
        second = _wait(db, 2)
    finally:
        stop.set()
        worker.join(30)
    assert first[0].state is JobState.DEAD
    assert "OutOfMemoryError" in (first[0].error or ""), first[0].error
    assert second[1].state is JobState.SUCCEEDED, second[1].error
    lines = [line.split() for line in runlog.read_text().splitlines()]
    assert ["device=cuda:8", ok.series_uid] in [line[:2] for line in lines]
    pids = {uid: pid for word, uid, pid in lines if word == "start"}
    assert pids[oom.series_uid] != pids[ok.series_uid]  # a fresh child ran the next job
    db.dispose()


def _wait(db, n: int, timeout: float = 120) -> list[Job]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            jobs = list(session.scalars(select(Job).order_by(Job.id)))
        if len(jobs) >= n and all(j.state in (JobState.SUCCEEDED, JobState.DEAD) for j in jobs):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"jobs did not finish: {[(j.state, j.error) for j in jobs]}")

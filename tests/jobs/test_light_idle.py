"""A light idle node: the checker child never loads torch; inference children start with the
first job and exit after ``workers.keep_warm`` (issue 16 item 8)."""

from __future__ import annotations

import os
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

from sqlalchemy import select

from dicomnode.jobs import Job, JobState, Worker
from dicomnode.jobs.checker import IsolatedChecker
from dicomnode.pipeline import InputRefused, Pipeline, PipelineInputs, SeriesInput
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest

HEAVY = ("torch", "monai", "highdicom")
REAL = ("lung_nodule", "brain_lesion", "mammo_score")


class ModulesProbe(Pipeline):
    """Refuses every input, naming the heavy modules its process holds."""

    name = "probe"
    version = "1"

    def check(self, inputs: PipelineInputs) -> None:
        raise InputRefused(",".join(m for m in HEAVY if m in sys.modules) or "none")

    def run(self, inputs, ctx):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def _ct(tmp_path: Path) -> PipelineInputs:
    (spec,) = specs("light", 1)
    files = write_series(spec, tmp_path / "ct")
    series = SeriesInput(spec.study_uid, spec.series_uid, tuple(files), "CT")
    return PipelineInputs(spec.study_uid, (series,))


def test_the_checker_child_checks_real_pipelines_without_torch(tmp_path):
    names = {ep.name for ep in entry_points(group="dicomnode.pipelines")}
    assert set(REAL) <= names, "pip install -e . registers the pipelines' entry points"
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        pipelines={"probe": {"class": f"{__name__}:ModulesProbe"}},
    )
    checker = IsolatedChecker(cfg, timeout=60)
    checker.start()
    try:
        inputs = _ct(tmp_path)
        for name in REAL:  # each loads its pipeline and reads the headers (refusal or not)
            result = checker.check(name, inputs)
            assert result.problem is None and result.version, (name, result)
        assert (
            checker.check("lung_nodule", inputs).refused == "too few slices: 3 (at least 16 needed)"
        )
        assert checker.check("probe", inputs).refused == "none"
        pid = checker._child.pid
        assert pid is not None
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libtorch" not in maps
    finally:
        checker.close()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/status").read_text().count("State:\tZ") == 1


def test_the_inference_child_starts_with_a_job_and_exits_after_keep_warm(tmp_path):
    runlog = tmp_path / "runs.log"
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        workers={"keep_warm": 2},
        pipelines={"toy": {"class": "testkit.toy_pipeline:ToyPipeline", "runlog": str(runlog)}},
    )
    db = open_database(cfg.database_url)
    store = Store(cfg.store_path, db, min_free=0)
    first, second = specs("warm", 2)
    stop = threading.Event()
    worker = Worker(db, cfg, 0, stop)
    worker.start()
    try:
        time.sleep(1.0)
        assert worker.child.pid is None  # idle: no inference process
        ingest(store, write_series(first, tmp_path / "a"))
        complete_all(db, cfg)
        _wait_succeeded(db, 1)
        pid = _pids(runlog)[first.series_uid]
        deadline = time.monotonic() + 20
        # the worker thread forgets the child's pid a moment after the process is gone
        while time.monotonic() < deadline and not (_gone(pid) and worker.child.pid is None):
            time.sleep(0.1)
        assert _gone(pid) and worker.child.pid is None  # exited after keep_warm
        ingest(store, write_series(second, tmp_path / "b"))
        complete_all(db, cfg)
        _wait_succeeded(db, 2)  # the next job starts a fresh child
        assert _pids(runlog)[second.series_uid] != pid
    finally:
        stop.set()
        worker.join(30)
        db.dispose()
    assert not worker.is_alive()


def _pids(runlog: Path) -> dict[str, int]:
    lines = [line.split() for line in runlog.read_text().splitlines()]
    return {words[1]: int(words[2]) for words in lines if words[0] == "start"}


def _wait_succeeded(db, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    jobs: list[Job] = []
    while time.monotonic() < deadline:
        with db.session() as session:
            jobs = list(session.scalars(select(Job).order_by(Job.id)))
        if len(jobs) >= n and all(j.state is JobState.SUCCEEDED for j in jobs):
            return
        time.sleep(0.1)
    raise AssertionError(f"jobs: {[(j.id, j.state, j.error) for j in jobs]}")

"""No slow work under the database write lock (issue 16 item 6), over a real node process.

The stability sweep commits its completions first and asks the pipelines (``check``) with no
transaction open: a check that sleeps must not hold up a C-STORE of another series (on SQLite
every store's commit needs the write lock), and a kill -9 while the check sleeps must still
queue the series' job exactly once after the restart.
"""

from __future__ import annotations

import time
from pathlib import Path

from testkit import dicomgen
from testkit.nodeproc import NodeProcess, storescu, wait_for
from testkit.seriesgen import write_series
from testkit.toy_pipeline import write_runlog_path

TOY = "testkit.toy_pipeline:ToyPipeline"
#: Seconds the slow check sleeps: longer than the test's half second plus a store that must
#: take under one, with room to spare (the test waits for the job after it).
CHECK_SLEEP = 5


def _node(node_factory, runlog: str) -> NodeProcess:
    return node_factory(
        stability={"series_seconds": 1, "study_seconds": 600},
        pipelines={"toy": {"class": TOY, "runlog": runlog}},
        routes=[{"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "shadow": True}],
        workers={"count": 0},
    )


def _checks(runlog: str, series_uid: str) -> int:
    path = Path(runlog)
    lines = path.read_text().splitlines() if path.exists() else []
    return sum(line.split()[:2] == ["check", series_uid] for line in lines)


def _jobs(node: NodeProcess, series_uid: str) -> int:
    return node.query(f"select count(*) from jobs where subject = '{series_uid}'")[0][0]


def test_a_sleeping_check_does_not_delay_a_store_of_another_series(node_factory, tmp_path):
    slow, other = dicomgen.study("slow-check", [2, 1])
    runlog = write_runlog_path(tmp_path)
    slow_files = write_series(slow, tmp_path / "slow", description=f"TOY:check-sleep={CHECK_SLEEP}")
    other_files = write_series(other, tmp_path / "other")
    node = _node(node_factory, runlog).start()
    assert storescu(node.port, slow_files).returncode == 0
    wait_for(lambda: _checks(runlog, slow.series_uid), "the slow check to start", timeout=30)
    time.sleep(0.5)  # well inside the check's sleep
    started = time.monotonic()
    sent = storescu(node.port, other_files)
    elapsed = time.monotonic() - started
    assert sent.returncode == 0, sent.stderr
    print(f"C-STORE (association, store, release) while a check sleeps: {elapsed:.3f} s")
    assert elapsed < 1.0, f"the store waited {elapsed:.1f} s for the sweep's check"
    assert _jobs(node, slow.series_uid) == 0  # the check still sleeps
    wait_for(lambda: _jobs(node, slow.series_uid), "the slow series' job", timeout=60)


def test_kill_9_while_the_check_sleeps_queues_the_job_exactly_once(node_factory, tmp_path):
    (spec,) = dicomgen.study("kill-check", [2])
    runlog = write_runlog_path(tmp_path)
    files = write_series(spec, tmp_path / "series", description="TOY:check-sleep=3")
    node = _node(node_factory, runlog).start()
    assert storescu(node.port, files).returncode == 0
    wait_for(lambda: _checks(runlog, spec.series_uid), "the check to start", timeout=30)
    node.kill()
    # the completion committed before the check; its job did not
    state = "select state, completions, handled from series"
    assert node.query(state) == [("complete", 1, 0)]
    assert _jobs(node, spec.series_uid) == 0
    node.start()  # the first sweep hands the completion on again
    wait_for(lambda: _jobs(node, spec.series_uid), "the job after the restart", timeout=60)
    time.sleep(3)  # further sweeps queue nothing more
    assert _jobs(node, spec.series_uid) == 1
    assert node.query(state) == [("complete", 1, 1)]
    assert _checks(runlog, spec.series_uid) == 2
    kinds = [k for (k,) in node.query("select kind from audit_events order by id")]
    assert kinds.count("series.complete") == 1 and kinds.count("job.queued") == 1

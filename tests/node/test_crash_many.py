"""kill -9 of the node 20 times during the ingest of one 150-instance series, then during its job.

After every restart: every instance storescu saw answered with Success has its row and a file
with the row's sha256 and the sent dataset; files on disk and rows match one to one; the spool
is empty. Then the series completes and its job runs exactly once to its end, though the node
is killed twice while the pipeline runs (the killed runs never end; the lease expires and the
job runs again).
"""

from __future__ import annotations

import random
import time

from testkit import dicomgen
from testkit.crash import (
    SentCache,
    acknowledged_files,
    instance_count,
    send_with_kills,
    store_state,
    wait,
)
from testkit.nodeproc import storescu
from testkit.seriesgen import write_series

KILLS = 20
JOB_KILLS = 2
#: Instances of the series, and how many new ones arrive before each kill during ingest: the
#: rounds take at most 100 (20 x 5), so storescu is always cut short (a restart costs seconds,
#: an instance milliseconds: the count buys no extra assertion).
INSTANCES = 150
NEW_PER_ROUND = (1, 5)
TOY = "testkit.toy_pipeline:ToyPipeline"


def test_20_kills_during_ingest_lose_nothing_and_the_job_runs_once(node_factory, tmp_path):
    (spec,) = dicomgen.study("crash-many", [INSTANCES])
    files = write_series(spec, tmp_path / "series")
    runlog = tmp_path / "runs.log"
    sections = dict(
        workers={
            "count": 1,
            "device": "cpu",
            "lease_seconds": 2,
            "heartbeat_seconds": 0.5,
            "poll_seconds": 0.1,
            "backoff_seconds": 0,
            "max_attempts": 10,
        },
        pipelines={"toy": {"class": TOY, "runlog": str(runlog), "sleep": 1.5}},
        routes=[{"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "shadow": True}],
        logging={"level": "WARNING"},
        http={"enabled": False},  # not what is tested; a start without it is ~0.3 s shorter
    )
    # A long quiet period first: the series must not complete between kills.
    node = node_factory(stability={"series_seconds": 60, "study_seconds": 60}, **sections)
    started = time.monotonic()
    sent = SentCache()
    done = send_with_kills(
        node,
        files,
        spec.series_uid,
        kills=KILLS,
        rng=random.Random(20),
        new=NEW_PER_ROUND,
        sent=sent,
    )
    assert done.rounds == KILLS
    assert all(n > 0 for n in done.new_per_round), done.new_per_round
    assert done.sender_done_before_kill == 0, "a kill came after storescu's last store"
    assert len(done.acknowledged) < len(files)

    # The rest, still with the long quiet period; one more kill (not during ingest).
    node.start()
    states = [*done.states, store_state(node, done.acknowledged, sent)]
    rest = storescu(node.port, [f for f in files if f not in done.acknowledged])
    assert rest.returncode == 0, rest.stdout + rest.stderr
    sent_now = acknowledged_files(rest.stdout + rest.stderr)
    acked = done.acknowledged | {p for p in files if str(p) in sent_now}
    assert acked == set(files)
    node.kill()
    # Same data dir, a short quiet period: the series completes at the first sweep.
    node = node_factory(stability={"series_seconds": 1, "study_seconds": 1}, **sections)
    node.start()
    states.append(store_state(node, acked, sent))

    def runs(word: str) -> int:
        lines = runlog.read_text().split("\n") if runlog.exists() else []
        return sum(line.startswith(f"{word} {spec.series_uid} ") for line in lines)

    for kill in range(JOB_KILLS):  # kill while the pipeline sleeps in its run
        wait(lambda k=kill: runs("start") > k, f"run {kill + 1} of the job started")
        node.kill()
        node.start()
        states.append(store_state(node, acked, sent))
    wait(lambda: _job_states(node, spec.series_uid) == ["succeeded"], "the job succeeded")
    node.kill()
    node.start()  # after a restart nothing runs again, and re-sent duplicates change nothing
    again = storescu(node.port, files)
    assert len(acknowledged_files(again.stdout + again.stderr)) == len(files), again.stderr
    time.sleep(2)  # more than series_seconds plus a sweep: room for a wrong completion
    states.append(store_state(node, acked, sent))
    node.stop()

    assert len(states) == KILLS + JOB_KILLS + 3
    for number, state in enumerate(states):
        assert state.consistent, f"after restart {number}: {state}"
    assert instance_count(node, spec.series_uid) == len(files)
    assert _job_states(node, spec.series_uid) == ["succeeded"]
    ((job_id, attempts),) = node.query("select id, attempts from jobs")
    assert attempts == JOB_KILLS + 1
    assert (runs("start"), runs("end")) == (JOB_KILLS + 1, 1)
    audit = dict(node.query("select kind, count(*) from audit_events group by kind"))
    assert audit.get("job.queued") == 1 and audit.get("job.succeeded") == 1
    assert audit.get("job.started") == JOB_KILLS + 1
    assert audit.get("series.complete") == 1 and "series.reopened" not in audit
    results = node.query("select job_id from job_results")
    written = list((node.root / "data" / "results").rglob("*.dcm"))
    assert results and {r for (r,) in results} == {job_id} and len(written) == len(results)
    print(
        f"\ncrash: {KILLS} kills during ingest + {JOB_KILLS} during the job, "
        f"{len(acked)} acknowledged, "
        f"lost {sum(len(s.lost) for s in states)}, "
        f"orphans {sum(len(s.orphans) for s in states)}, "
        f"rows without file {sum(len(s.rows_without_file) for s in states)}, "
        f"spool left {sum(len(s.spool) for s in states)}, "
        f"job runs {runs('start')} started / {runs('end')} ended / 1 succeeded, "
        f"{time.monotonic() - started:.1f} s"
    )


def _job_states(node, series_uid: str) -> list[str]:
    return [s for (s,) in node.query(f"select state from jobs where subject = '{series_uid}'")]

"""Crash benchmark: kill -9 the node N times while dcmtk's storescu sends it one series.

Each round starts the node, checks its store against what storescu saw acknowledged, sends the
rest and kills the node after a random (seeded) number of new instances. Then the rest is
sent, the quiet period is shortened, and the series' job (a toy pipeline) runs after a last
restart. The harness is the tests' (``testkit/crash.py``, the same as
``tests/node/test_crash_many.py``, which also kills the node while the job runs).

Usage: ``python bench/crash.py [--rounds 20] [--instances 300] [--seed 20]``. Prints one
figure line; exits 1 when an instance was lost, a file orphaned, a row left without a file,
the spool not emptied or the job not run exactly once.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the node harness of the tests
    sys.path.insert(0, str(ROOT))

from testkit import dicomgen  # noqa: E402
from testkit.crash import (  # noqa: E402
    SentCache,
    acknowledged_files,
    send_with_kills,
    store_state,
    wait,
)
from testkit.nodeproc import NodeProcess, storescu  # noqa: E402
from testkit.seriesgen import write_series  # noqa: E402

TOY = "testkit.toy_pipeline:ToyPipeline"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="kills during ingest")
    parser.add_argument("--instances", type=int, default=300, help="instances of the series")
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # refused probes while starting
    if args.instances < 12 * args.rounds:
        parser.error(f"--instances must be at least 12 x --rounds ({12 * args.rounds})")
    with tempfile.TemporaryDirectory(prefix="dicomnode-crash-") as tmp:
        return run(Path(tmp), args.rounds, args.instances, args.seed)


def run(tmp: Path, rounds: int, instances: int, seed: int) -> int:
    (spec,) = dicomgen.study("crash-bench", [instances])
    files = write_series(spec, tmp / "series")
    runlog = tmp / "runs.log"
    node = NodeProcess(
        tmp / "node",
        {
            "stability": {"series_seconds": 3600, "study_seconds": 3600},
            "workers": {"count": 1, "device": "cpu", "poll_seconds": 0.1},
            "pipelines": {"toy": {"class": TOY, "runlog": str(runlog)}},
            "routes": [
                {"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "shadow": True}
            ],
            "logging": {"level": "WARNING"},
        },
    )
    started = time.monotonic()
    sent = SentCache()
    try:
        done = send_with_kills(
            node, files, spec.series_uid, kills=rounds, rng=random.Random(seed), sent=sent
        )
        node.start()
        states = [*done.states, store_state(node, done.acknowledged, sent)]
        rest = storescu(node.port, [f for f in files if f not in done.acknowledged])
        names = set(acknowledged_files(rest.stdout + rest.stderr))
        acked = done.acknowledged | {f for f in files if str(f) in names}
        node.kill()
        short = {**node.overrides, "stability": {"series_seconds": 1, "study_seconds": 1}}
        node = NodeProcess(node.root, short)  # same data dir, a short quiet period
        node.start()
        states.append(store_state(node, acked, sent))
        wait(
            lambda: node.query("select count(*) from jobs where state = 'succeeded'")[0][0] > 0,
            "the job succeeded",
            timeout=120,
        )
        node.kill()
        node.start()  # nothing may run again
        time.sleep(3)
        states.append(store_state(node, acked, sent))
    finally:
        node.stop()
    lines = runlog.read_text().splitlines() if runlog.exists() else []
    jobs = node.query("select count(*) from jobs")[0][0]
    figures = {
        "rounds": done.rounds,
        "acknowledged": f"{len(acked)}/{len(files)}",
        "lost": sum(len(s.lost) for s in states),
        "orphans": sum(len(s.orphans) for s in states),
        "rows_without_file": sum(len(s.rows_without_file) for s in states),
        "spool_left": sum(len(s.spool) for s in states),
        "jobs": jobs,
        "job_runs": sum(line.startswith("end ") for line in lines),
    }
    print(
        " ".join(f"{k}={v}" for k, v in figures.items()),
        f"seconds={time.monotonic() - started:.1f}",
    )
    bad = any(figures[k] for k in ("lost", "orphans", "rows_without_file", "spool_left"))
    return int(bad or len(acked) != len(files) or jobs != 1 or figures["job_runs"] != 1)


if __name__ == "__main__":
    sys.exit(main())

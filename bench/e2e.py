"""End-to-end latency with Orthanc as the PACS: last instance sent -> first result in Orthanc.

For each of the three demo studies (chest CT -> ``lung_nodule``, FLAIR MR -> ``brain_lesion``,
4-view MG -> ``mammo_score``, study level), one at a time so that no job waits for another:
upload to Orthanc over REST, ``/modalities/node/store`` (a user's "send to node"), then watch
Orthanc's ``/changes`` every 20 ms for the first result. The node's database splits the time:

=========  ===========================================================================
quiet      last instance received -> series (study) complete: the stability window
           (``stability.series_seconds`` / ``study_seconds``) plus the sweep's granularity
route      complete -> job row created (routing, the pipeline's cheap ``check``)
queue      job created -> claimed by a worker (``workers.poll_seconds``)
inference  claimed -> finished: inputs read, model run, SEG/SR/summary encoded
export     finished -> first result listed in Orthanc's ``/changes`` (exporter wake-up,
           association, C-STORE, Orthanc's fsync; includes up to 20 ms of polling)
=========  ===========================================================================

"overhead" is total minus the configured quiet window minus inference: everything the node
adds on top of waiting and computing. Target (issue 6): <= 3 s.

Usage: ``python bench/e2e.py [--series-seconds 2] [--study-seconds 3] [--device auto]``. Prints
a table; exits 0 (a shortfall is reported, not asserted). Clocks: the node and this script
run on the same host.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the Orthanc and node harnesses of the tests
    sys.path.insert(0, str(ROOT))

from dicomnode.demo.orthanc import Orthanc  # noqa: E402
from dicomnode.demo.studies import DemoStudy, generate_studies, routes_for  # noqa: E402
from testkit.nodeproc import NodeProcess, free_port  # noqa: E402

TARGET_OVERHEAD = 3.0
POLL = 0.02


@dataclass
class Timing:
    """One study's path through the node, in seconds."""

    label: str
    pipeline: str
    quiet_config: float
    quiet: float
    route: float
    queue: float
    inference: float
    export: float

    @property
    def total(self) -> float:
        return self.quiet + self.route + self.queue + self.inference + self.export

    @property
    def overhead(self) -> float:
        return self.total - self.quiet_config - self.inference


def _epoch(text: str) -> float:
    """A naive-UTC timestamp from the node's SQLite database as seconds since the epoch."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _one(db: Path, sql: str, *args: Any) -> Any:
    with sqlite3.connect(db, timeout=30) as conn:
        row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def _first_result(pacs: Orthanc, since: int, study_uid: str, timeout: float) -> float:
    """Wall time at which Orthanc first lists a new instance of ``study_uid``."""
    deadline = time.monotonic() + timeout
    seq = since
    while time.monotonic() < deadline:
        changes = pacs.get(f"/changes?since={seq}&limit=100")
        now = time.time()
        for change in changes["Changes"]:
            if change["ChangeType"] == "NewInstance":
                study = pacs.get(f"/instances/{change['ID']}/study")
                if study["MainDicomTags"]["StudyInstanceUID"] == study_uid:
                    return now
        seq = changes["Last"]
        time.sleep(POLL)
    raise TimeoutError(f"no result in Orthanc within {timeout:.0f} s")


def _wait_done(node: NodeProcess, study_uid: str, timeout: float) -> int:
    """The job id once the study's job and its deliveries are final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = node.query(f"select id, state, error from jobs where study_uid = '{study_uid}'")
        if job and job[0][1] in ("dead", "refused"):
            raise RuntimeError(f"job {job[0][0]} {job[0][1]}: {job[0][2]}")
        if job and job[0][1] == "succeeded":
            open_ = node.query(
                f"select count(*) from deliveries where job_id = {job[0][0]} "
                "and state not in ('delivered', 'dead')"
            )[0][0]
            if not open_:
                return int(job[0][0])
        time.sleep(0.1)
    raise TimeoutError("the job did not finish")


def measure(
    node: NodeProcess, pacs: Orthanc, study: DemoStudy, quiet: dict[str, float], timeout: float
) -> Timing:
    """Send one study from Orthanc to the node and split the time to its first result."""
    (orthanc_id,) = pacs.upload(study.files)
    since = int(pacs.get("/changes?last")["Last"])
    pacs.send_study("node", orthanc_id)
    arrived = _first_result(pacs, since, study.study_uid, timeout)
    job_id = _wait_done(node, study.study_uid, timeout)
    db = node.db_path
    level = _one(db, "select level from jobs where id = ?", job_id)
    last = _epoch(
        _one(
            db,
            "select max(i.received_at) from instances i join series s on i.series_id = s.id "
            "join studies t on s.study_id = t.id where t.study_uid = ?",
            study.study_uid,
        )
    )
    if level == "study":
        completed = _one(
            db, "select completed_at from studies where study_uid = ?", study.study_uid
        )
    else:
        completed = _one(
            db,
            "select s.completed_at from series s join jobs j on j.subject = s.series_uid "
            "where j.id = ?",
            job_id,
        )
    created, started, finished = (
        _epoch(_one(db, f"select {column} from jobs where id = ?", job_id))
        for column in ("created_at", "started_at", "finished_at")
    )
    done = _epoch(completed)
    return Timing(
        label=study.label,
        pipeline=study.pipeline,
        quiet_config=quiet[level],
        quiet=done - last,
        route=created - done,
        queue=started - created,
        inference=finished - started,
        export=arrived - finished,
    )


def render(timings: list[Timing]) -> str:
    """The table, one row per study, seconds."""
    columns = ("quiet", "route", "queue", "inference", "export", "total", "overhead")
    lines = [f"{'study':<16} {'pipeline':<13} " + " ".join(f"{c:>9}" for c in columns)]
    for t in timings:
        values = [getattr(t, c) for c in columns]
        lines.append(f"{t.label:<16} {t.pipeline:<13} " + " ".join(f"{v:9.2f}" for v in values))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series-seconds", type=float, default=2.0)
    parser.add_argument("--study-seconds", type=float, default=3.0)
    parser.add_argument("--device", default="auto", help="workers.device")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    quiet = {"series": args.series_seconds, "study": args.study_seconds}
    with tempfile.TemporaryDirectory(prefix="dicomnode-bench-e2e-") as tmp:
        work = Path(tmp)
        pacs_port = free_port()
        node = NodeProcess(
            work / "node",
            {
                "stability": {
                    "series_seconds": args.series_seconds,
                    "study_seconds": args.study_seconds,
                },
                "workers": {"count": 1, "device": args.device},
                "destinations": {
                    "pacs": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port}
                },
                "routes": routes_for("pacs"),
            },
        )
        pacs = Orthanc(
            work / "orthanc",
            modalities={"node": ("DICOMNODE", "127.0.0.1", node.port)},
            dicom_port=pacs_port,
        )
        try:
            node.start(timeout=60)
            pacs.start()
            studies = generate_studies(work / "studies")
            timings = [measure(node, pacs, study, quiet, args.timeout) for study in studies]
        finally:
            pacs.stop()
            node.stop()
    print(render(timings))
    worst = max(t.overhead for t in timings)
    verdict = "meets" if worst <= TARGET_OVERHEAD else "MISSES"
    print(
        f"\neverything but quiet window and inference: worst {worst:.2f} s "
        f"({verdict} the target of {TARGET_OVERHEAD:.0f} s); "
        f"quiet window configured: series {args.series_seconds:g} s, study {args.study_seconds:g} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

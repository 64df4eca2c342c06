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

Signal mode (``--signal commitment|confirm|timer``): the timer is set to ``--timer-seconds``
(60, Orthanc's default StableAge) and the completion comes from the signal: ``commitment``,
Orthanc's store with ``"StorageCommitment": true`` (Orthanc is a ``sources`` entry of the node);
``confirm``, the node asks Orthanc with C-FIND (``stability.confirm_with``); ``timer``, no
signal (the plumbing, with a short ``--timer-seconds``). The split comes from the job's
timeline (``job_stages``):

=========  ===========================================================================
signal     last instance received -> complete (by the signal named in the SIGNAL column)
route      complete -> queued
queue      queued -> started (claimed)
load       started -> model ready (the inference process and model; ~0 once warm)
inference  model ready -> inference done
write      inference done -> results written (SEG/SR/summary encoded, rows committed)
export     written -> first result listed in Orthanc's ``/changes``
=========  ===========================================================================

"overhead" is total minus inference: everything the node adds to the model's own time (target
of issue 13: <= 1.5 s); "x_timer" is how many times longer the same study takes in timer mode
(the timer's quiet window instead of the signal's wait: ``timer + total - signal``) than with
the signal. ``--pipelines toy`` replaces the demo studies with one small CT series run by the
test suite's toy pipeline sleeping ``--toy-seconds`` (5: a CT whose inference takes 5 s),
after a warm-up series that starts the inference process (not counted).

Priors (``--pipelines toy --priors``, issue 17): Orthanc also holds an earlier CT study of the
measured series' patient (not sent to the node); the route has a ``priors`` policy and the toy
pipeline uses priors, so the worker finds the prior by C-FIND and retrieves it by C-MOVE
(``--retrieve get``: C-GET) before the job runs. The report adds the time that retrieval takes,
from the ``priors.*`` audit rows (request to the last retrieval): the extra time the job waits
(it is part of the ``inference`` / ``load`` column, which starts when the job is claimed).
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
from testkit.nodeproc import TOY_PIPELINE, NodeProcess, free_port  # noqa: E402

TOY_PRIORS_PIPELINE = "testkit.toy_pipeline:ToyPriorsPipeline"

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
    node: NodeProcess,
    pacs: Orthanc,
    study: DemoStudy | ToyStudy,
    quiet: dict[str, float],
    timeout: float,
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


@dataclass(frozen=True)
class ToyStudy:
    """A small CT series for the toy pipeline (``--pipelines toy``)."""

    label: str
    pipeline: str
    study_uid: str
    files: list[Path]


def toy_studies(folder: Path, seconds: float, slices: int, *, warm_up: bool) -> list[ToyStudy]:
    """A 3-slice warm-up series (starts the inference process; with ``warm_up``), then the
    measured CT whose inference (the toy pipeline's sleep) takes ``seconds``."""
    from testkit.seriesgen import specs, write_series

    stamp = f"{time.time():.6f}"
    studies = []
    if warm_up:
        warm = specs(f"bench-warm-{stamp}", 1, count=3, rows=32)[0]
        files = write_series(warm, folder / "warm", description="TOY:sleep=0", value=5)
        studies.append(ToyStudy(WARM_UP, "toy", warm.study_uid, files))
    ct = specs(f"bench-ct-{stamp}", 1, count=slices, rows=64)[0]
    files = write_series(ct, folder / "ct", description=f"TOY:sleep={seconds:g}", value=5)
    studies.append(ToyStudy(f"ct-{slices}sl-{seconds:g}s", "toy", ct.study_uid, files))
    return studies


#: The label of the toy mode's warm-up series (measured, not reported).
WARM_UP = "warm-up"
#: Target of issue 13: everything but inference, with a completion signal.
TARGET_SIGNAL_OVERHEAD = 1.5
SIGNALS = ("commitment", "confirm", "timer")


#: Signal mode's columns that are the time between two stages of the job's timeline.
SPANS = {
    "waited": ("received", "completed"),
    "route": ("completed", "queued"),
    "queue": ("queued", "started"),
    "load": ("started", "model_ready"),
    "inference": ("model_ready", "inference_done"),
    "write": ("inference_done", "written"),
}
#: Signal mode's columns, in order (``x_timer``: timer mode's total over this one's).
SIGNAL_COLUMNS = (*SPANS, "export", "total", "overhead", "x_timer")


@dataclass
class SignalTiming:
    """One study's timeline in signal mode: stage -> epoch seconds, and the arrival."""

    label: str
    pipeline: str
    signal: str
    at: dict[str, float]
    arrived: float
    timer: float

    def seconds(self, column: str) -> float:
        """The value of one of :data:`SIGNAL_COLUMNS`."""
        if column in SPANS:
            first, last = SPANS[column]
            return self.at[last] - self.at[first]
        total = self.arrived - self.at["received"]
        if column == "export":
            return self.arrived - self.at["written"]
        if column == "overhead":
            return total - self.seconds("inference")
        if column == "x_timer":  # the timer's quiet window instead of the signal's wait
            return (self.timer + total - self.seconds("waited")) / total
        return total


def _stages(db: Path, job_id: int) -> tuple[dict[str, float], str]:
    """The job's timeline (pre-run stages and the latest attempt's; the first delivery) and
    the completion's signal."""
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute(
            "select stage, at, attempt, detail from job_stages where job_id = ? order by id",
            (job_id,),
        ).fetchall()
    latest = max(attempt for _, _, attempt, _ in rows)
    at: dict[str, float] = {}
    signal = "?"
    for stage, when, attempt, detail in rows:
        if attempt in (0, latest) and stage not in at:
            at[stage] = _epoch(when)
            signal = detail if stage == "completed" else signal
    return at, signal


def measure_signal(
    node: NodeProcess, pacs: Orthanc, study: DemoStudy | ToyStudy, signal: str, args: Any
) -> SignalTiming:
    """Send one study from Orthanc (with Storage Commitment when ``signal`` is commitment)
    and split the time to its first result by the job's timeline."""
    (orthanc_id,) = pacs.upload(study.files)
    since = int(pacs.get("/changes?last")["Last"])
    if signal == "commitment":
        payload = {"Resources": [orthanc_id], "Synchronous": True, "StorageCommitment": True}
        pacs.post("/modalities/node/store", payload)
    else:
        pacs.send_study("node", orthanc_id)
    arrived = _first_result(pacs, since, study.study_uid, args.timeout)
    job_id = _wait_done(node, study.study_uid, args.timeout)
    at, used = _stages(node.db_path, job_id)
    return SignalTiming(study.label, study.pipeline, used, at, arrived, args.timer_seconds)


def render_signal(timings: list[SignalTiming]) -> str:
    """The signal mode's table, one row per study, seconds."""
    head = f"{'study':<16} {'pipeline':<13} {'signal':<10} "
    lines = [head + " ".join(f"{c:>9}" for c in SIGNAL_COLUMNS)]
    for t in timings:
        values = [t.seconds(c) for c in SIGNAL_COLUMNS]
        lines.append(
            f"{t.label:<16} {t.pipeline:<13} {t.signal:<10} "
            + " ".join(f"{v:9.2f}" for v in values)
        )
    return "\n".join(lines)


def node_config(args: Any, pacs_port: int) -> dict[str, Any]:
    """The node's config overrides for the mode of ``args``."""
    orthanc = {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port}
    stability: dict[str, Any] = {
        "series_seconds": args.series_seconds,
        "study_seconds": args.study_seconds,
    }
    config: dict[str, Any] = {
        "workers": {"count": 1, "device": args.device},
        "destinations": {"pacs": orthanc},
        "routes": routes_for("pacs"),
    }
    if args.signal is not None:
        stability = {"series_seconds": args.timer_seconds, "study_seconds": args.timer_seconds}
        config["sources"] = {"pacs": orthanc}
        if args.signal == "confirm":
            stability["confirm_with"] = ["pacs"]
    config["stability"] = stability
    if args.pipelines == "toy":
        config["pipelines"] = {"toy": {"class": TOY_PIPELINE, "threshold": 1}}
        config["routes"] = [
            {"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "send_to": ["pacs"]}
        ]
    if args.priors:
        config["sources"] = {"pacs": {**orthanc, "retrieve": args.retrieve}}
        config["pipelines"] = {"toy": {"class": TOY_PRIORS_PIPELINE, "threshold": 1}}
        config["routes"][0]["priors"] = {
            "from": ["pacs"],
            "modality": "CT",
            "lookback": "5y",
            "timeout": 60,
        }
    return config


def run(args: Any) -> str:
    """Run the mode of ``args`` against a fresh node and Orthanc; the report's text."""
    with tempfile.TemporaryDirectory(prefix="dicomnode-bench-e2e-") as tmp:
        work = Path(tmp)
        pacs_port = free_port()
        node = NodeProcess(work / "node", node_config(args, pacs_port))
        pacs = Orthanc(
            work / "orthanc",
            modalities={"node": ("DICOMNODE", "127.0.0.1", node.port)},
            dicom_port=pacs_port,
        )
        try:
            node.start(timeout=60)
            pacs.start()
            studies: list[DemoStudy | ToyStudy] = []
            if args.pipelines == "toy":
                studies += toy_studies(
                    work / "studies", args.toy_seconds, args.toy_slices, warm_up=args.warm_up
                )
                if args.priors:
                    for study in studies:  # only the measured series has a prior
                        measured = study.label != WARM_UP
                        patient = PRIOR_PATIENT if measured else "BENCH-WARM"
                        _restamp(study.files, patient, CURRENT_DATE)
                    pacs.upload(prior_files(work / "studies", args.toy_slices))
            else:
                studies += generate_studies(work / "studies")
            if args.signal is None:
                quiet = {"series": args.series_seconds, "study": args.study_seconds}
                timings = [measure(node, pacs, study, quiet, args.timeout) for study in studies]
                report = _timer_report([t for t in timings if t.label != WARM_UP], args)
            else:
                signalled = [
                    measure_signal(node, pacs, study, args.signal, args) for study in studies
                ]
                report = _signal_report([t for t in signalled if t.label != WARM_UP], args)
            if args.priors:
                measured = [s for s in studies if s.label != WARM_UP]
                report += "".join(
                    f"\nprior retrieval ({args.retrieve}) for {s.label}: "
                    f"{priors_span(node.db_path, s.study_uid)}"
                    for s in measured
                )
            return report
        finally:
            pacs.stop()
            node.stop()


#: The measured toy series' patient and date, and its prior's date (``--priors``).
PRIOR_PATIENT, CURRENT_DATE, PRIOR_DATE = "BENCH-P", "20250101", "20230101"


def _restamp(files: list[Path], patient: str, date: str) -> None:
    """Set PatientID and StudyDate of ``files`` in place."""
    import pydicom

    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.StudyDate = patient, date
        ds.save_as(path, enforce_file_format=True)


def prior_files(folder: Path, slices: int) -> list[Path]:
    """An earlier CT study of the measured toy series' patient (``--priors``)."""
    from testkit.seriesgen import specs, write_series

    prior = specs(f"bench-prior-{time.time():.6f}", 1, count=slices, rows=64)[0]
    files = write_series(prior, folder / "prior", description="PRIOR", value=5)
    _restamp(files, PRIOR_PATIENT, PRIOR_DATE)
    return files


def priors_span(db: Path, study_uid: str) -> str:
    """The priors retrieval of ``study_uid``'s job in words, from its ``priors.*`` audit rows
    (request to the last row that follows it)."""
    with sqlite3.connect(db, timeout=30) as conn:
        asked = conn.execute(
            "select id, at from audit_events where kind = 'priors.requested' and subject = ? "
            "order by id limit 1",
            (study_uid,),
        ).fetchone()
        if asked is None:
            return "no priors requested"
        rows = conn.execute(
            "select kind, at, detail from audit_events where kind like 'priors.%' and id > ? "
            "order by id",
            (asked[0],),
        ).fetchall()
    if not rows:
        return "priors requested, no answer recorded"
    seconds = _epoch(rows[-1][1]) - _epoch(asked[1])
    moved = [detail for kind, _, detail in rows if kind == "priors.retrieved"]
    failed = [detail for kind, _, detail in rows if kind == "priors.failed"]
    what = "; ".join(moved or failed or [rows[-1][2] or rows[-1][0]])
    return f"{seconds:.3f} s ({what})"


def _timer_report(timings: list[Timing], args: Any) -> str:
    worst = max(t.overhead for t in timings)
    verdict = "meets" if worst <= TARGET_OVERHEAD else "MISSES"
    return render(timings) + (
        f"\n\neverything but quiet window and inference: worst {worst:.2f} s "
        f"({verdict} the target of {TARGET_OVERHEAD:.0f} s); "
        f"quiet window configured: series {args.series_seconds:g} s, study {args.study_seconds:g} s"
    )


def _signal_report(timings: list[SignalTiming], args: Any) -> str:
    worst = max(t.seconds("overhead") for t in timings)
    verdict = "meets" if worst <= TARGET_SIGNAL_OVERHEAD else "MISSES"
    ratio = min(t.seconds("x_timer") for t in timings)
    return render_signal(timings) + (
        f"\n\nsignal {args.signal}, timer {args.timer_seconds:g} s: everything but inference "
        f"worst {worst:.2f} s ({verdict} the target of {TARGET_SIGNAL_OVERHEAD:g} s); "
        f"timer mode would take at least {ratio:.1f}x as long"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series-seconds", type=float, default=2.0)
    parser.add_argument("--study-seconds", type=float, default=3.0)
    parser.add_argument("--device", default="auto", help="workers.device")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--signal", choices=SIGNALS, help="signal mode: what completes the study (default: off)"
    )
    parser.add_argument(
        "--timer-seconds", type=float, default=60.0, help="signal mode: the timer behind it"
    )
    parser.add_argument("--pipelines", choices=("demo", "toy"), default="demo")
    parser.add_argument("--toy-seconds", type=float, default=5.0, help="toy inference time")
    parser.add_argument("--toy-slices", type=int, default=20, help="slices of the toy CT")
    parser.add_argument(
        "--warm-up",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="toy: run a warm-up series first (not reported)",
    )
    parser.add_argument(
        "--priors",
        action="store_true",
        help="toy: Orthanc holds a prior of the measured series, retrieved before its job",
    )
    parser.add_argument(
        "--retrieve", choices=("move", "get"), default="move", help="priors: C-MOVE or C-GET"
    )
    args = parser.parse_args(argv)
    if args.priors and args.pipelines != "toy":
        parser.error("--priors needs --pipelines toy")
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

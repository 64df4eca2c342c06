"""Send a corpus (:mod:`testkit.corpus`) to a real node and collect what happened.

Used by the CI test (``tests/node/test_corpus.py``, a few series routed) and by
``bench/corpus.py`` (everything routed). The node runs with routes for the three pipelines;
results are kept (shadow routes) and checked with ``dciodvfy``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom

from testkit.corpus import CorpusFile, CorpusSeries, SendOutcome, send_file
from testkit.nodeproc import NodeProcess

DCIODVFY = shutil.which("dciodvfy", path="/usr/bin") or shutil.which("dciodvfy")
FINAL = ("succeeded", "dead", "refused", "failed")
#: What an operator should never read in a refusal: Python's own words.
PYTHON_WORDS = re.compile(r"Traceback|\w+(Error|Exception)\b|has no attribute|NoneType|\bFile \"")


def node_config(select: str = ".*") -> dict[str, Any]:
    """Routes for the three pipelines (results kept, not sent); ``select`` is a regex on the
    SeriesDescription a series must also match (the corpus marks its cases ``corpus:<name>``)."""

    def described(pattern: str) -> dict[str, Any]:
        return {"SeriesDescription": {"regex": f"(?is){pattern}.*corpus:({select})"}}

    return {
        "routes": [
            {
                "name": "chest-ct-nodules",
                "pipeline": "lung_nodule",
                "when": {"Modality": "CT", "instances": {"min": 16}, **described("")},
                "send_to": [],
                "shadow": True,
            },
            {
                "name": "brain-flair-lesions",
                "pipeline": "brain_lesion",
                "when": {"Modality": "MR", **described("flair")},
                "send_to": [],
                "shadow": True,
            },
            {
                "name": "screening-mammo",
                "pipeline": "mammo_score",
                "level": "study",
                "when": {"Modality": "MG", **described("")},
                "send_to": [],
                "shadow": True,
            },
        ],
        "workers": {
            "count": 1,
            "device": "cpu",
            "poll_seconds": 0.2,
            "backoff_seconds": 0.2,
        },
        "stability": {"series_seconds": 1, "study_seconds": 2},
    }


@dataclass
class JobOutcome:
    """One job of the run: its series' mutation, its state, its reason, its results."""

    pipeline: str
    study_uid: str
    state: str
    error: str
    results: list[Path] = field(default_factory=list)
    #: dciodvfy error lines per result file name.
    dciodvfy_errors: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class CorpusRun:
    """Everything a report or an assertion needs."""

    sent: list[tuple[CorpusFile, SendOutcome]]
    #: (status, reason) of each ``store refused`` line in the node's log, in order.
    refusals: list[tuple[str, str]]
    jobs: list[JobOutcome]
    alive: bool

    def table(self, series: list[CorpusSeries]) -> str:
        """The issue's table: files, stored, refused by reason, series analysed, results..."""
        refused = Counter(f"{status} {reason}" for status, reason in self.refusals)
        unsent = Counter(out.problem for _, out in self.sent if out.status is None)
        stored = sum(out.stored for _, out in self.sent)
        states = Counter(job.state for job in self.jobs)
        results = sum(len(job.results) for job in self.jobs)
        errors = sum(len(lines) for job in self.jobs for lines in job.dciodvfy_errors.values())
        lines = [
            "| what | count |",
            "|---|---:|",
            f"| files (pydicom + mutated) | {len(self.sent)} |",
            f"| stored (Success or warning) | {stored} |",
        ]
        lines += [f"| refused: {reason} | {n} |" for reason, n in sorted(refused.items())]
        lines += [f"| not sent: {reason} | {n} |" for reason, n in sorted(unsent.items())]
        lines += [
            f"| mutated series (studies) | {len(series)} |",
            f"| jobs (series analysed) | {len(self.jobs)} |",
        ]
        lines += [f"| jobs {state} | {n} |" for state, n in sorted(states.items())]
        lines += [
            f"| result objects | {results} |",
            f"| dciodvfy errors in results | {errors} |",
            f"| node alive after | {'yes' if self.alive else 'NO'} |",
        ]
        return "\n".join(lines)

    def by_mutation(self, series: list[CorpusSeries]) -> str:
        """Per mutated case: the job's state and reason (or 'no job')."""
        jobs = {(job.pipeline, job.study_uid): job for job in self.jobs}
        lines = ["| mutation | pipeline | outcome |", "|---|---|---|"]
        for case in series:
            job = jobs.get((case.pipeline, case.study_uid))
            if job is None:
                outcome = "no job"
            elif job.state == "succeeded":
                outcome = f"succeeded, {len(job.results)} objects"
            else:
                outcome = f"{job.state}: {job.error}"
            lines.append(f"| {case.mutation} | {case.pipeline} | {outcome} |")
        return "\n".join(lines)


def log_refusals(node: NodeProcess) -> list[tuple[str, str]]:
    """(status, reason) of every ``store refused`` record of the node's JSON log."""
    found = []
    for line in node.log_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("message") == "store refused":
            found.append((str(record.get("status")), str(record.get("reason"))))
    return found


def wait_jobs(node: NodeProcess, expected: int, timeout: float) -> list[tuple[Any, ...]]:
    """Job rows once at least ``expected`` exist and all are final."""
    deadline = time.monotonic() + timeout
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        if node.proc is not None and node.proc.poll() is not None:
            raise AssertionError(f"node exited:\n{node.log_text()[-3000:]}")
        rows = node.query("select id, pipeline, study_uid, state, error from jobs order by id")
        if len(rows) >= expected and all(row[3] in FINAL for row in rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"jobs not final after {timeout} s: {rows}")


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for one file (its absence is an error too)."""
    if DCIODVFY is None:
        return ["dciodvfy is missing (scripts/setup.sh installs dicom3tools)"]
    run = subprocess.run(
        [DCIODVFY, str(path)], capture_output=True, text=True, errors="replace", timeout=60
    )
    lines = (line.strip() for line in (run.stdout + run.stderr).splitlines())
    return [line for line in lines if line.startswith("Error")]


def collect_jobs(node: NodeProcess, rows: list[tuple[Any, ...]]) -> list[JobOutcome]:
    results_dir = node.root / "data" / "results"
    jobs = []
    for job_id, pipeline, study_uid, state, error in rows:
        paths = [
            results_dir / path
            for (path,) in node.query(f"select path from job_results where job_id = {job_id}")
        ]
        job = JobOutcome(pipeline, study_uid, str(state), error or "", paths)
        job.dciodvfy_errors = {p.name: dciodvfy_errors(p) for p in paths}
        jobs.append(job)
    return jobs


def run_corpus(
    node: NodeProcess,
    files: list[CorpusFile],
    *,
    expected_jobs: int,
    timeout: float,
    settle: float = 5,
) -> CorpusRun:
    """Send every file (one association each), wait for ``expected_jobs`` final jobs."""
    sent = [(item, send_file(node.port, item)) for item in files]
    rows = wait_jobs(node, expected_jobs, timeout)
    while True:  # a late completion adds a job: done when none came for a while
        time.sleep(settle)
        again = wait_jobs(node, len(rows), timeout)
        if len(again) == len(rows):
            break
        rows = again
    alive = node.proc is not None and node.proc.poll() is None
    return CorpusRun(sent, log_refusals(node), collect_jobs(node, rows), alive)


def partial_files(node: NodeProcess) -> list[str]:
    """Anything left in the spool, and stored files pydicom cannot read to the end."""
    problems = [f"spool: {p.name}" for p in (node.store / ".incoming").glob("*") if p.is_file()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in node.stored_files():
            try:
                pydicom.dcmread(path)
            except Exception as exc:
                problems.append(f"{path.name}: {type(exc).__name__}")
    return problems

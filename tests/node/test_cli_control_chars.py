"""CLI tables print control characters from headers and peers as visible escapes (issue 14
item 5): ESC/BEL/CR in a SeriesDescription, a route error or an audit detail never reach the
terminal raw; ``--json`` keeps the exact text (JSON escapes it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from dicomnode.jobs.models import JobState
from dicomnode.routing.explain import ExplainRow, render_table
from dicomnode.routing.schema import Level
from dicomnode.store.audit import AuditKind, record
from dicomnode.store.db import open_database
from dicomnode.store.models import CompletionState, Series, Study
from dicomnode.terminal import printable
from testkit.jobrows import job_row

#: Retitles an xterm, rings the bell, returns the cursor to hide what came before.
HOSTILE = "AX\x1b]0;pwned\x07\rT1\x1b[2J\x9b\u2028end"


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if c != "\n" and not c.isprintable()]


def _cli(config: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def test_printable_escapes_every_control_character():
    assert printable(HOSTILE) == "AX\\x1b]0;pwned\\x07\\rT1\\x1b[2J\\x9b\\u2028end"
    assert printable("CT chest 1.2.840") == "CT chest 1.2.840"
    assert printable(None) == "" and printable(7) == "7"
    assert _raw_controls(printable("".join(map(chr, range(0x00, 0xA0))))) == []


def test_status_and_jobs_tables_escape_control_characters(tmp_path: Path):
    config = tmp_path / "dicomnode.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}))
    db = open_database(f"sqlite:///{tmp_path / 'data' / 'state.db'}")
    try:
        with db.session() as session:
            study = Study(study_uid="1.2.3", state=CompletionState.COMPLETE)
            session.add(study)
            session.flush()
            session.add(
                Series(
                    study_id=study.id,
                    series_uid="1.2.3.4",
                    modality="CT",
                    description=HOSTILE,
                    state=CompletionState.COMPLETE,
                )
            )
            session.add(
                job_row(
                    JobState.DEAD,
                    "k",
                    route="r\x1bx",
                    study_uid="1.2.3",
                    subject="1.2.3.4",
                    error=f"peer said {HOSTILE}",
                )
            )
            record(session, AuditKind.SERIES_COMPLETE, subject="1.2.3.4", detail=HOSTILE)
    finally:
        db.dispose()

    status = _cli(config, "status", "--audit", "10")
    jobs = _cli(config, "jobs")
    assert _raw_controls(status) == [] and _raw_controls(jobs) == []
    assert status.count("AX\\x1b]0;pwned\\x07\\rT1\\x1b[2J\\x9b\\u2028end") == 2  # series, audit
    assert "r\\x1bx" in jobs and "peer said AX\\x1b]0;pwned\\x07" in jobs  # first line
    as_json = json.loads(_cli(config, "status", "--json"))
    assert as_json[0]["description"] == HOSTILE  # exact, escaped by JSON on the wire


def test_explain_table_escapes_control_characters():
    row = ExplainRow(
        route="chest",
        pipeline="toy",
        level=Level.SERIES,
        study_uid="1.2.3",
        series_uid="1.2.3.4",
        modality="CT",
        series_description=HOSTILE,
        instances=1,
        series_count=1,
        matched=False,
        reason=f"SeriesDescription: got {HOSTILE!s}",
    )
    table = render_table([row])
    assert _raw_controls(table) == []
    assert "\\x1b]0;pwned\\x07" in table

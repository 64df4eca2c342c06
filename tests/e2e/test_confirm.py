"""C-FIND confirmation against the source (``stability.confirm_with``), with Orthanc as the
source: the node receives by C-STORE what Orthanc holds and completes it as soon as the
sending association is released, long before its 60 s timers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dicomnode.demo.orthanc import Orthanc
from dicomnode.demo.processes import free_port
from testkit import dicomgen
from testkit.nodeproc import TOY_PIPELINE, NodeProcess, storescu, wait_for
from testkit.orthanc import discard
from testkit.seriesgen import write_series

#: The timers a confirmation has to beat by far.
SLOW = {"series_seconds": 60, "study_seconds": 60}
TOY_ROUTE = {"name": "toy", "pipeline": "toy", "when": {"Modality": "CT"}, "shadow": True}

Study = tuple[list[dicomgen.SeriesSpec], list[list[Path]]]


def _overrides(source_port: int, **stability: float) -> dict[str, Any]:
    return {
        "sources": {"orthanc": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": source_port}},
        "stability": {**stability, "confirm_with": ["orthanc"], "confirm_timeout": 3},
        "pipelines": {"toy": {"class": TOY_PIPELINE, "threshold": 1}},
        "routes": [TOY_ROUTE],
        "workers": {"count": 1, "device": "cpu", "poll_seconds": 0.2},
    }


@pytest.fixture
def study(tmp_path: Path) -> Study:
    """A CT study of two series (3 and 2 instances), written to files."""
    specs = dicomgen.study("confirm", [3, 2])
    return specs, [write_series(s, tmp_path / "files" / s.series_uid) for s in specs]


@pytest.fixture
def pacs(tmp_path: Path, study: Study) -> Iterator[Orthanc]:
    """Orthanc holding the study; it answers C-FIND from AE DICOMNODE (any port)."""
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"node": ("DICOMNODE", "127.0.0.1", 1)})
    orthanc.start()
    try:
        orthanc.upload([p for files in study[1] for p in files])
        yield orthanc
    finally:
        discard(orthanc)


def _send(node: NodeProcess, files: list[Path]) -> datetime:
    """C-STORE ``files`` on one association (released at the end); the time it ended."""
    sent = storescu(node.port, files, aet="MODALITY")
    assert sent.returncode == 0, sent.stderr
    return datetime.now(UTC)


def _series(node: NodeProcess) -> dict[str, tuple[str, str | None, str | None]]:
    rows = node.query("select series_uid, state, completed_by, completed_at from series")
    return {uid: (state, by, at) for uid, state, by, at in rows}


def _study(node: NodeProcess) -> tuple[str, str | None, str | None]:
    ((state, by, at),) = node.query("select state, completed_by, completed_at from studies")
    return state, by, at


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_confirmed_by_orthanc_long_before_the_timers(node_factory, pacs, study):
    specs, files = study
    node = node_factory(**_overrides(pacs.dicom_port, **SLOW)).start()
    released = _send(node, files[0] + files[1])
    state, by, at = wait_for(
        lambda: (s := _study(node))[0] == "complete" and s, "study confirmed", timeout=10
    )
    assert by == "confirm"
    series = _series(node)
    assert {uid: (s, b) for uid, (s, b, _) in series.items()} == {
        spec.series_uid: ("complete", "confirm") for spec in specs
    }
    latency = max(_at(a) for _, _, a in series.values()) - released
    assert latency.total_seconds() < 5, latency  # the timers say 60 s
    # handed on at once, and analysed: each CT series' job has run, long before the timers
    jobs = wait_for(
        lambda: (
            (rows := node.query("select subject, created_at, finished_at, state from jobs"))
            and all(state == "succeeded" for *_, state in rows)
            and rows
        ),
        "jobs succeeded",
        timeout=20,
    )
    assert sorted(s for s, *_ in jobs) == sorted(spec.series_uid for spec in specs)
    queued = max(_at(c) for _, c, _, _ in jobs) - released
    analysed = max(_at(f) for _, _, f, _ in jobs) - released
    assert analysed.total_seconds() < 30, analysed
    print(
        f"last instance -> study complete {(_at(at) - released).total_seconds():.3f} s, "
        f"jobs queued {queued.total_seconds():.3f} s, analysed {analysed.total_seconds():.3f} s"
    )
    assert node.query(
        "select count(*) from audit_events where kind = 'series.complete' and detail = 'by confirm'"
    ) == [(2,)]


def test_partial_send_is_not_confirmed(node_factory, pacs, study):
    (three, two), files = study
    node = node_factory(**_overrides(pacs.dicom_port, **SLOW)).start()
    _send(node, files[0][:2] + files[1])  # Orthanc holds 3 of the first series, we get 2
    wait_for(
        lambda: _series(node).get(two.series_uid, ("",))[0] == "complete",
        "the whole series confirmed",
        timeout=10,
    )  # one query answers for both series: the partial one has been judged too
    series = _series(node)
    assert series[two.series_uid][1] == "confirm"
    assert series[three.series_uid][:2] == ("open", None)
    assert _study(node)[:2] == ("open", None)
    assert "counts differ from the source" in node.log_text()
    # the last instance completes it on the next release
    _send(node, files[0][2:])
    wait_for(lambda: _study(node)[0] == "complete", "study confirmed", timeout=10)
    assert _series(node)[three.series_uid][:2] == ("complete", "confirm")


def test_source_down_leaves_completion_to_the_timers(node_factory, study):
    specs, files = study
    node = node_factory(**_overrides(free_port(), series_seconds=3, study_seconds=4)).start()
    _send(node, files[0] + files[1])
    wait_for(lambda: "source not answering" in node.log_text(), "the failed query", timeout=10)
    assert {s for s, _, _ in _series(node).values()} == {"open"}  # nothing early
    wait_for(lambda: _study(node)[0] == "complete", "timer completion", timeout=15)
    assert _study(node)[1] == "timer"
    assert {by for _, by, _ in _series(node).values()} == {"timer"}
    log = node.log_text()
    assert "Traceback" not in log and "confirmation failed" not in log


def test_check_echoes_each_source(node_factory, pacs):
    node = node_factory(
        sources={
            "orthanc": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs.dicom_port},
            "gone": {"ae_title": "GONE", "host": "127.0.0.1", "port": free_port()},
        },
        stability={"confirm_with": ["orthanc"]},
    )
    out = node.cli("check")
    lines = out.stdout.splitlines()
    (up,) = [line for line in lines if "source orthanc" in line]
    (down,) = [line for line in lines if "source gone" in line]
    assert up.startswith("ok") and "answers C-ECHO (confirm_with)" in up
    assert down.startswith("WARN") and "peer down" in down
    assert out.returncode == 0, out.stdout  # a source that is down is no config error


def test_check_fails_on_a_source_tls_file_that_cannot_be_loaded(node_factory, tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    node = node_factory(
        sources={
            "tls": {
                "ae_title": "PACS",
                "host": "127.0.0.1",
                "port": free_port(),
                "tls": {"ca": str(missing)},
            }
        },
    )
    out = node.cli("check")
    (line,) = [line for line in out.stdout.splitlines() if "source tls" in line]
    assert line.startswith("FAIL") and str(missing) in line
    assert out.returncode == 1

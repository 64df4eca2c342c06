"""Priors (issue 17): Orthanc holds earlier studies of the patient; the node receives the
current study, finds the prior at Orthanc by C-FIND, retrieves it by C-MOVE (or C-GET; or,
at Orthanc's DICOMweb plugin, by QIDO-RS and WADO-RS) and hands it to a pipeline that uses
priors. The prior is stored marked ``prior``: no route runs
on it, nothing of it is exported, and its retrieval is audited. A source that is down or
silent delays the job by ``priors.timeout`` at most, and the job says why it has no prior."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest

from dicomnode.demo.orthanc import DICOMWEB_PLUGIN, Orthanc
from dicomnode.demo.processes import free_port
from dicomnode.results import Algorithm, FindingKind, Findings, encode
from testkit import dicomgen
from testkit.dicomgen import SeriesSpec
from testkit.nodeproc import NodeProcess, storescu, wait_for
from testkit.orthanc import discard
from testkit.seriesgen import write_series

TOY_PRIORS = "testkit.toy_pipeline:ToyPriorsPipeline"
CURRENT_DATE, PRIOR_DATE, OLD_DATE = "20250110", "20240105", "20180101"


@dataclass(frozen=True)
class Visit:
    """One study of the test patient: its series specs and files."""

    date: str
    specs: list[SeriesSpec]
    files: list[list[Path]]

    @property
    def study_uid(self) -> str:
        return self.specs[0].study_uid


def _visit(root: Path, name: str, date: str, modalities: list[str], *, patient: str) -> Visit:
    """A study of ``patient`` on ``date``, one 3-instance series per modality (chest)."""
    base = dicomgen.study(name, [3] * len(modalities))
    pairs = zip(base, modalities, strict=True)
    specs = [replace(s, modality=m, rows=16, columns=16) for s, m in pairs]
    files = []
    for spec in specs:
        paths = write_series(spec, root / name / spec.series_uid)
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.StudyDate, ds.PatientID, ds.BodyPartExamined = date, patient, "CHEST"
            ds.save_as(path, enforce_file_format=True)
        files.append(paths)
    return Visit(date, specs, files)


def _config(source_port: int, tmp_path: Path, **priors: Any) -> dict[str, Any]:
    policy = {
        "from": ["pacs"],
        "modality": "CT",
        "when": {"BodyPartExamined": "CHEST"},
        "lookback": "2y",
        "timeout": 15,
        **priors,
    }
    return {
        "sources": {"pacs": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": source_port}},
        "destinations": {"pacs": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": source_port}},
        "stability": {"series_seconds": 1, "study_seconds": 1.5},
        "pipelines": {
            "toy_priors": {
                "class": TOY_PRIORS,
                "threshold": 1,
                "priorslog": str(tmp_path / "priors.jsonl"),
            }
        },
        "routes": [
            {
                "name": "chest-ct",
                "pipeline": "toy_priors",
                "when": {"Modality": "CT"},
                "send_to": ["pacs"],
                "outputs": ["sr"],
                "priors": policy,
            }
        ],
        "workers": {"count": 1, "device": "cpu", "poll_seconds": 0.2},
    }


@pytest.fixture
def visits(tmp_path: Path) -> dict[str, Visit]:
    """The current study, the prior (CT + MR), one beyond the look-back, another patient's."""
    files = tmp_path / "files"
    return {
        "current": _visit(files, "current", CURRENT_DATE, ["CT"], patient="P-17"),
        "prior": _visit(files, "prior", PRIOR_DATE, ["CT", "MR"], patient="P-17"),
        "old": _visit(files, "old", OLD_DATE, ["CT"], patient="P-17"),
        "other": _visit(files, "other", PRIOR_DATE, ["CT"], patient="P-99"),
    }


@dataclass
class Setup:
    node: NodeProcess
    pacs: Orthanc
    priorslog: Path


def _start(
    tmp_path: Path, node_factory: Any, visits: dict[str, Visit], *, retrieve: str = "move"
) -> Iterator[Setup]:
    pacs_port, web_port = free_port(), free_port()
    config = _config(pacs_port, tmp_path)
    if retrieve == "wado":
        config["sources"]["pacs"] = {
            "url": f"http://127.0.0.1:{web_port}/dicom-web/",
            "headers": {"X-Requested-By": "dicomnode-test"},
        }
    else:
        config["sources"]["pacs"]["retrieve"] = retrieve
    node = node_factory(**config)
    pacs = Orthanc(
        tmp_path / "orthanc",
        modalities={"node": ("DICOMNODE", "127.0.0.1", node.port)},
        dicom_port=pacs_port,
        http_port=web_port,
        dicomweb=retrieve == "wado",
    )
    pacs.start()
    try:
        for name in ("prior", "old", "other"):
            pacs.upload([p for files in visits[name].files for p in files])
        node.start()
        yield Setup(node, pacs, tmp_path / "priors.jsonl")
    finally:
        discard(pacs)


@pytest.fixture
def moved(tmp_path: Path, node_factory: Any, visits: dict[str, Visit]) -> Iterator[Setup]:
    yield from _start(tmp_path, node_factory, visits)


@pytest.fixture
def got(tmp_path: Path, node_factory: Any, visits: dict[str, Visit]) -> Iterator[Setup]:
    yield from _start(tmp_path, node_factory, visits, retrieve="get")


@pytest.fixture
def web(tmp_path: Path, node_factory: Any, visits: dict[str, Visit]) -> Iterator[Setup]:
    if not DICOMWEB_PLUGIN.is_file():
        pytest.skip(f"Orthanc's DICOMweb plugin is not installed ({DICOMWEB_PLUGIN})")
    yield from _start(tmp_path, node_factory, visits, retrieve="wado")


def _send(node: NodeProcess, visit: Visit) -> None:
    sent = storescu(node.port, [p for files in visit.files for p in files], aet="MODALITY")
    assert sent.returncode == 0, sent.stderr


def _runs(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _finished(node: NodeProcess) -> list[tuple[Any, ...]]:
    return node.query("select subject, state, error from jobs order by id")


def _check_prior_used(setup: Setup, visits: dict[str, Visit], how: str) -> None:
    node = setup.node
    current, prior = visits["current"], visits["prior"]
    _send(node, current)
    (run,) = wait_for(lambda: _runs(setup.priorslog), "the job ran", timeout=20)
    # the pipeline got the prior CT series (not the MR, not the old study, not the other
    # patient's), with its study date and its stored files
    assert run["study"] == current.study_uid
    assert run["note"] is None
    assert run["priors"] == [
        {
            "study": prior.study_uid,
            "series": prior.specs[0].series_uid,
            "date": PRIOR_DATE,
            "files": 3,
            "exist": True,
            "role": "prior",
            "reports": [],  # the source holds no SR of ours for it
        }
    ]
    jobs = wait_for(
        lambda: (rows := _finished(node)) and rows[0][1] == "succeeded" and rows, "job succeeded"
    )
    # the prior is stored, marked prior; it completes, but no job ran on it
    origins = dict(node.query("select series_uid, origin from series"))
    assert origins == {
        current.specs[0].series_uid: "received",
        prior.specs[0].series_uid: "prior",
    }
    wait_for(
        lambda: (
            node.query(f"select state from series where series_uid = '{prior.specs[0].series_uid}'")
            == [("complete",)]
        ),
        "the prior series complete",
        timeout=10,
    )
    wait_for(
        lambda: (
            node.query(f"select state from studies where study_uid = '{prior.study_uid}'")
            == [("complete",)]
        ),
        "the prior study complete",
        timeout=10,
    )
    assert [subject for subject, _, _ in jobs] == [current.specs[0].series_uid]
    assert node.query("select count(*) from audit_events where kind = 'routing.no_match'") == [(0,)]
    # nothing of the prior was exported: every delivery is of the current study's results
    delivered = wait_for(
        lambda: (
            (
                rows := node.query(
                    "select r.study_uid, d.state from deliveries d join job_results r "
                    "on r.id = d.result_id"
                )
            )
            and all(state == "delivered" for _, state in rows)
            and rows
        ),
        "results delivered",
    )
    assert {study for study, _ in delivered} == {current.study_uid}
    assert len(setup.pacs.instances_of_study(prior.study_uid)) == 6  # as uploaded
    # audited: asked, found, retrieved, our earlier reports looked for
    audit = node.query(
        "select kind, subject, detail from audit_events where kind like 'priors.%' order by id"
    )
    kinds = [kind for kind, _, _ in audit]
    assert kinds == ["priors.requested", "priors.found", "priors.retrieved", "priors.reports"]
    assert audit[3][1] == prior.study_uid
    assert audit[3][2] == (
        "0 SR series listed that may be toy_priors's, 0 reports of toy_priors found; none used"
    )
    assert "1 earlier studies within 2y, 1 chosen with 1 matching series" in audit[1][2]
    retrieved = audit[2][2]
    assert audit[2][1] == prior.study_uid and f"{how} 3 instances, 0 failed, 3 stored" in retrieved
    print(f"prior retrieval ({how}, 3 instances, loopback): {retrieved.rsplit(', ', 1)[1]}")
    assert "P-17" not in node.log_text()  # no patient identifier in the log


def test_prior_is_moved_used_and_never_routed_or_exported(moved, visits):
    _check_prior_used(moved, visits, "C-MOVE")


def test_prior_by_c_get(got, visits):
    _check_prior_used(got, visits, "C-GET")


def test_prior_by_qido_and_wado(web, visits):
    _check_prior_used(web, visits, "WADO-RS")
    # every priors step went to the DICOMweb source, named by its URL in the audit trail
    peers = web.node.query("select distinct peer from audit_events where kind like 'priors.%'")
    assert peers == [(f"pacs http://127.0.0.1:{web.pacs.http_port}/dicom-web/",)]


def _delivered(node: NodeProcess, study_uid: str) -> list[str]:
    """SOP Instance UIDs of the node's results of ``study_uid`` delivered to the PACS."""
    return [
        uid
        for uid, state in node.query(
            "select r.sop_instance_uid, d.state from deliveries d join job_results r "
            f"on r.id = d.result_id where r.study_uid = '{study_uid}'"
        )
        if state == "delivered"
    ]


def _evidence(pacs: Orthanc, study_uid: str) -> set[str]:
    """SOP Instance UIDs in the Pertinent Other Evidence of the SRs of ``study_uid`` at the
    PACS."""
    found = set()
    for item in pacs.instances_of_study(study_uid):
        ds = pydicom.dcmread(BytesIO(pacs.file(item["ID"])))
        for study in ds.get("PertinentOtherEvidenceSequence") or []:
            for series in study.ReferencedSeriesSequence:
                found |= {str(i.ReferencedSOPInstanceUID) for i in series.ReferencedSOPSequence}
    return found


def test_prior_already_stored_is_used_as_is_with_our_earlier_report(moved, visits):
    """The prior CT was processed by the node earlier (its SR went to the PACS); the
    follow-up uses the stored CT as it is, and retrieves and references our earlier SR."""
    node, prior, current = moved.node, visits["prior"], visits["current"]
    _send(node, replace(prior, files=prior.files[:1]))  # the prior CT, received normally
    wait_for(lambda: len(_runs(moved.priorslog)) == 1, "its own job ran", timeout=20)
    (earlier,) = wait_for(lambda: _delivered(node, prior.study_uid), "its SR at the PACS")
    _send(node, current)
    runs = wait_for(lambda: (r := _runs(moved.priorslog)) and len(r) == 2 and r, "second job")
    (used,) = runs[1]["priors"]
    assert used["series"] == prior.specs[0].series_uid
    assert used["reports"] == [earlier]
    # the CT is used as stored; our SR came back as a prior (never routed)
    origins = dict(node.query("select series_uid, origin from series"))
    assert origins[prior.specs[0].series_uid] == "received"
    assert sorted(origins.values()) == ["prior", "received", "received"]
    details = [
        d for (d,) in node.query("select detail from audit_events where kind = 'priors.retrieved'")
    ]
    assert details[0].endswith("already stored (3 instances), used as is")
    assert "C-MOVE 1 instances, 0 failed, 1 stored" in details[1]
    (reports,) = node.query("select detail from audit_events where kind = 'priors.reports'")
    assert reports[0] == (
        "1 SR series listed that may be toy_priors's, 1 reports of toy_priors found; "
        f"used: SR {earlier} for series {prior.specs[0].series_uid}"
    )
    # the follow-up's SR at the PACS references our earlier SR
    wait_for(lambda: _delivered(node, current.study_uid), "the follow-up's SR at the PACS")
    assert earlier in _evidence(moved.pacs, current.study_uid)


def _our_sr(files: list[Path], version: str, *, pipeline: str = "toy_priors", when: str) -> Path:
    """An SR of the series of ``files`` as the node encodes them (``pipeline`` ``version``),
    made at ``when`` (``YYYYMMDDhhmmss``)."""
    sources = [pydicom.dcmread(p) for p in files]
    findings = Findings(kinds=(FindingKind.LUNG_NODULE,))
    (sr,) = encode(findings, sources, algorithm=Algorithm(pipeline, version), outputs=["sr"])
    sr.ContentDate, sr.ContentTime = when[:8], when[8:]
    path = files[0].parent.parent / f"sr-{pipeline}-{version}-{sources[0].Modality}.dcm"
    sr.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("how", ["moved", "got", "web"])
def test_newest_of_our_reports_of_the_prior_series_is_used(request, visits, how):
    """The PACS holds several SRs of the prior study: two of ours for the prior CT (the newer
    is used), one of another pipeline (left out by its Series Description) and one of ours
    for the prior MR (another series)."""
    setup: Setup = request.getfixturevalue(how)
    prior = visits["prior"]
    ct, mr = prior.files
    older = _our_sr(ct, "0.9", when="20240106080000")
    newer = _our_sr(ct, "1.0", when="20240107080000")
    other = _our_sr(ct, "1.0", pipeline="lung_nodule", when="20240108080000")
    of_mr = _our_sr(mr, "1.0", when="20240108080000")
    setup.pacs.upload([older, newer, other, of_mr])
    _send(setup.node, visits["current"])
    (run,) = wait_for(lambda: _runs(setup.priorslog), "the job ran", timeout=30)
    (used,) = run["priors"]
    assert used["series"] == prior.specs[0].series_uid
    assert used["reports"] == [str(pydicom.dcmread(newer).SOPInstanceUID)]
    (reports,) = setup.node.query("select detail from audit_events where kind = 'priors.reports'")
    assert reports[0].startswith(
        "3 SR series listed that may be toy_priors's, 3 reports of toy_priors found; used: SR"
    )
    # the other pipeline's SR was not retrieved
    sr_series = {str(pydicom.dcmread(p).SeriesInstanceUID) for p in (older, newer, of_mr)}
    stored = {uid for uid, origin in setup.node.query("select series_uid, origin from series")}
    assert sr_series <= stored
    assert str(pydicom.dcmread(other).SeriesInstanceUID) not in stored


def _silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung PACS)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def silent() -> Iterator[int]:
    yield from _silent_listener()


@pytest.mark.parametrize("down", ["refused", "silent"])
def test_source_down_job_runs_without_prior(node_factory, tmp_path, visits, silent, down):
    port = silent if down == "silent" else free_port()
    config = _config(port, tmp_path, timeout=2)
    config["routes"][0]["send_to"], config["routes"][0]["shadow"] = [], True
    del config["destinations"]
    node = node_factory(**config).start()
    _send(node, visits["current"])
    (run,) = wait_for(lambda: _runs(tmp_path / "priors.jsonl"), "the job ran", timeout=20)
    assert run["priors"] == []
    if down == "silent":
        assert run["note"] == "prior not retrieved: source pacs did not answer within 2 s"
    else:
        assert run["note"] == "prior not retrieved: source pacs: no association (source down?)"
    wait_for(lambda: _finished(node)[0][1] == "succeeded", "job succeeded")
    audit = node.query("select kind from audit_events where kind like 'priors.%' order by id")
    kinds = [kind for (kind,) in audit]
    assert kinds == ["priors.requested", "priors.failed"]

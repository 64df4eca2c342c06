"""DICOMweb STOW-RS receive: a CT series stored with dicomweb-client into a real node is
analysed; failures come back per instance with their reason; auth, media types and the body
limit; nothing is half-stored and no spool file is left."""

from __future__ import annotations

import http.client
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from dicomweb_client import DICOMwebClient
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian
from sqlalchemy import select

from dicomnode.api.metrics import NodeMetrics
from dicomnode.api.server import ApiServer
from dicomnode.api.stow_parts import FailureReason
from dicomnode.config.loader import parse_config
from dicomnode.config.schema import HttpConfig
from dicomnode.net.receive import Receiver
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from dicomnode.store.models import AuditEvent, Instance
from testkit import dicomgen, seriesgen
from testkit.nodeproc import NodeProcess, free_port, toy_export_config, wait_for

TOKEN = "stow-token-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BOUNDARY = "stow-test-boundary-7f3a"
MULTIPART = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
LIMIT = 256 * 1024
Answer = tuple[int, dict[str, str], bytes]


class _Node:
    """An in-process HTTP server whose STOW-RS stores into a real store and database."""

    def __init__(self, root: Path):
        self.db = open_database(f"sqlite:///{root / 'state.db'}")
        self.store = Store(root / "store", self.db, min_free=0)
        config = HttpConfig(port=0, token=TOKEN, max_stow_bytes=LIMIT)  # type: ignore[arg-type]
        self.api = ApiServer(config, self.db, NodeMetrics(), {}, Receiver(self.store))
        self.api.start()

    def post(self, path: str, body: bytes | Iterator[bytes], headers: dict[str, str]) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=30)
        try:
            chunked = not isinstance(body, bytes)
            conn.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
            response = conn.getresponse()
            answer = {k.lower(): v for k, v in response.getheaders()}
            return response.status, answer, response.read()
        finally:
            conn.close()

    def stow(self, parts: list[bytes], path: str = "/dicomweb/studies", **headers: str) -> Answer:
        return self.post(path, _multipart(parts), {"Content-Type": MULTIPART, **AUTH, **headers})

    def spool(self) -> list[str]:
        return sorted(p.name for p in self.store.incoming.iterdir())

    def stored(self) -> set[str]:
        with self.db.session() as session:
            return set(session.scalars(select(Instance.sop_instance_uid)))

    def audit(self, kind: str) -> list[tuple[str | None, str | None, str | None]]:
        with self.db.session() as session:
            rows = session.execute(
                select(AuditEvent.subject, AuditEvent.peer, AuditEvent.detail)
                .where(AuditEvent.kind == kind)
                .order_by(AuditEvent.id)
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Node]:
    running = _Node(tmp_path_factory.mktemp("stow"))
    yield running
    running.api.stop()
    running.db.dispose()


def _part10(ds: Dataset, *, preamble: bool = True) -> bytes:
    """``ds`` as a PS3.10 file (or, ``preamble=False``, as pydicom writes a data set without
    one: File Meta Information first, as dicomweb-client sends it)."""
    buffer = io.BytesIO()
    if preamble:
        dcmwrite(buffer, ds, enforce_file_format=True)
    else:
        dcmwrite(buffer, ds)
    return buffer.getvalue()


def _multipart(parts: list[bytes], boundary: str = BOUNDARY) -> bytes:
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    return body + f"--{boundary}--\r\n".encode()


def _answer(answer: Answer) -> Dataset:
    assert answer[1]["content-type"] == "application/dicom+json"
    return Dataset.from_json(json.loads(answer[2]))


def _failed(response: Dataset) -> dict[str, int]:
    return {
        str(item.get("ReferencedSOPInstanceUID", "")): int(item.FailureReason)
        for item in response.get("FailedSOPSequence", [])
    }


def _referenced(response: Dataset) -> list[str]:
    items = response.get("ReferencedSOPSequence", [])
    return [str(item.ReferencedSOPInstanceUID) for item in items]


def _series(name: str, count: int) -> tuple[dicomgen.SeriesSpec, list[Dataset]]:
    (spec,) = dicomgen.study(name, [count])
    return spec, list(dicomgen.series(spec))


def test_a_corrupt_part_fails_with_its_reason_and_the_others_are_stored(node: _Node) -> None:
    spec, good = _series("stow-mixed", 4)
    truncated = _part10(good[1])[:-100]  # pixel data cut short
    deflated = good[2].copy()
    deflated.file_meta = good[2].file_meta.copy()
    deflated.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    parts = [
        _part10(good[0]),
        truncated,
        b"this is not a DICOM file at all, but it is long enough to be judged " * 3,
        _part10(deflated),
        _part10(good[3], preamble=False),
    ]
    answer = node.stow(parts)
    assert answer[0] == 202
    response = _answer(answer)
    assert _referenced(response) == [good[0].SOPInstanceUID, good[3].SOPInstanceUID]
    assert _failed(response) == {
        good[1].SOPInstanceUID: FailureReason.CANNOT_UNDERSTAND,
        "": FailureReason.CANNOT_UNDERSTAND,
        good[2].SOPInstanceUID: FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
    }
    assert "RetrieveURL" in response and not response.RetrieveURL  # no WADO-RS: empty
    assert {good[0].SOPInstanceUID, good[3].SOPInstanceUID} <= node.stored()
    assert not {good[1].SOPInstanceUID, good[2].SOPInstanceUID} & node.stored()
    # stored as PS3.10 files with a zeroed preamble, whatever the part looked like
    files = sorted((node.store.root / spec.study_uid / spec.series_uid).iterdir())
    assert [f.read_bytes()[:132] for f in files] == [bytes(128) + b"DICM"] * 2
    failed = node.audit("store.failed")[-3:]
    assert [peer for _, peer, _ in failed] == ["stow:token@127.0.0.1"] * 3
    assert [detail.split()[0] for _, _, detail in failed] == ["0xC000", "0xC000", "0xC122"]
    assert "truncated" in failed[0][2]
    assert node.audit("stow.request")[-1] == (None, "stow:token@127.0.0.1", "2 stored, 3 failed")
    assert node.spool() == []


def test_instances_of_another_study_than_the_url_fail(node: _Node) -> None:
    spec, instances = _series("stow-study", 2)
    parts = [_part10(ds) for ds in instances]
    other = dicomgen.uid("another", "study")
    answer = node.stow(parts, f"/dicomweb/studies/{other}")
    assert answer[0] == 409
    assert _failed(_answer(answer)) == {
        ds.SOPInstanceUID: FailureReason.DATA_SET_DOES_NOT_MATCH for ds in instances
    }
    assert node.audit("stow.request")[-1] == (other, "stow:token@127.0.0.1", "0 stored, 2 failed")
    answer = node.stow(parts, f"/dicomweb/studies/{spec.study_uid}")
    assert answer[0] == 200
    assert _referenced(_answer(answer)) == [ds.SOPInstanceUID for ds in instances]
    again = node.stow(parts, f"/dicomweb/studies/{spec.study_uid}")  # a duplicate is stored
    assert again[0] == 200 and len(_referenced(_answer(again))) == 2
    assert node.stow(parts, "/dicomweb/studies/1.2.03")[0] == 400  # not a UID
    assert node.spool() == []


def test_out_of_space_fails_each_instance_with_out_of_resources(node: _Node) -> None:
    _, instances = _series("stow-full", 2)
    node.store.min_free = 1 << 62
    try:
        answer = node.stow([_part10(ds) for ds in instances])
    finally:
        node.store.min_free = 0
    assert answer[0] == 409
    assert _failed(_answer(answer)) == {
        ds.SOPInstanceUID: FailureReason.OUT_OF_RESOURCES for ds in instances
    }
    assert not {ds.SOPInstanceUID for ds in instances} & node.stored()
    assert node.spool() == []


@pytest.mark.parametrize("path", ["/dicomweb/studies", "/dicomweb/studies/{study}"])
def test_each_endpoint_with_and_without_the_token(node: _Node, path: str) -> None:
    spec, instances = _series(f"stow-auth{len(path)}", 1)
    path = path.format(study=spec.study_uid)
    body = _multipart([_part10(instances[0])])
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        answer = node.post(path, body, {"Content-Type": MULTIPART, **headers})
        assert answer[0] == 401 and answer[1]["www-authenticate"].startswith("Bearer")
    cross_site = {"Content-Type": MULTIPART, **AUTH, "Origin": "https://evil.example"}
    assert node.post(path, body, cross_site)[0] == 403
    assert instances[0].SOPInstanceUID not in node.stored()
    assert node.post(path, body, {"Content-Type": MULTIPART, **AUTH})[0] == 200
    assert instances[0].SOPInstanceUID in node.stored()


def test_media_types_and_malformed_bodies_store_nothing(node: _Node) -> None:
    _, instances = _series("stow-media", 2)
    parts = [_part10(ds) for ds in instances]
    body = _multipart(parts)
    for content_type, status in (
        ("application/dicom", 415),
        ('multipart/related; type="application/dicom+json"; boundary=x', 415),
        ('multipart/related; type="application/dicom"', 400),  # no boundary
    ):
        answer = node.post("/dicomweb/studies", body, {"Content-Type": content_type, **AUTH})
        assert answer[0] == status
    assert node.stow(parts, Accept="application/dicom+xml")[0] == 406
    cut = body[: len(body) // 2 + 7]  # no closing delimiter: nothing is stored
    assert node.post("/dicomweb/studies", cut, {"Content-Type": MULTIPART, **AUTH})[0] == 400
    empty = f"--{BOUNDARY}--\r\n".encode()
    assert node.post("/dicomweb/studies", empty, {"Content-Type": MULTIPART, **AUTH})[0] == 400
    assert not {ds.SOPInstanceUID for ds in instances} & node.stored()
    assert node.spool() == []


def test_a_body_over_the_limit_is_refused_and_nothing_is_half_stored(node: _Node) -> None:
    _, instances = _series("stow-large", 120)  # 32x32 CT slices, ~2.6 KB each: > 256 KiB
    body = _multipart([_part10(ds) for ds in instances])
    assert len(body) > LIMIT
    declared = node.post("/dicomweb/studies", body, {"Content-Type": MULTIPART, **AUTH})
    assert declared[0] == 413
    chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))  # no Content-Length
    try:
        streamed = node.post("/dicomweb/studies", chunks, {"Content-Type": MULTIPART, **AUTH})
        assert streamed[0] == 413
    except ConnectionError:
        pass  # the server may close before the client has sent everything
    assert not {ds.SOPInstanceUID for ds in instances} & node.stored()
    assert wait_for(lambda: node.spool() == [] or None, "spool emptied", timeout=5)


def test_dicomweb_client_stores_a_ct_series_into_a_node_that_analyses_it(
    node_factory, tmp_path
) -> None:
    config = toy_export_config(free_port(), free_port())
    config["http"] = {"token": TOKEN}
    running: NodeProcess = node_factory(**config).start()
    (spec,) = dicomgen.study("stow-ct", [12])
    instances = [dcmread(p) for p in seriesgen.write_series(spec, tmp_path / "ct")]
    client = DICOMwebClient(url=f"http://127.0.0.1:{running.http_port}/dicomweb", headers=AUTH)
    response = client.store_instances(instances)
    assert _referenced(response) == [ds.SOPInstanceUID for ds in instances]
    assert "FailedSOPSequence" not in response
    state = wait_for(
        lambda: (
            rows[0][0]
            if (rows := running.query("select state from jobs"))
            and rows[0][0] != "queued"
            and rows[0][0] != "running"
            else None
        ),
        "the series' job to end",
        timeout=60,
    )
    assert state == "succeeded"
    assert running.query("select subject, route from jobs") == [(spec.series_uid, "ct-toy")]
    assert len(running.stored_files()) == len(instances)
    peers = running.query("select peer from audit_events where kind = 'series.received'")
    assert peers == [("stow:token@127.0.0.1",)]
    # without the token: refused, as every state change
    anonymous = DICOMwebClient(url=f"http://127.0.0.1:{running.http_port}/dicomweb")
    with pytest.raises(requests.HTTPError) as refused:
        anonymous.store_instances(instances[:1])
    assert refused.value.response.status_code == 401
    log = running.log_text()
    assert dicomgen.CANARY_NAME not in log and dicomgen.CANARY_ID not in log


def test_the_conformance_statement_and_the_example_config_say_what_the_code_does() -> None:
    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "conformance.md").read_text(encoding="utf-8")
    section = doc.split("#### 4.2.4 DICOMweb STOW-RS service")[1].split("### 4.3 ")[0]
    listed = re.findall(r"^\| (0x[0-9A-F]{4}) \|", section, re.MULTILINE)
    assert sorted(int(code, 16) for code in listed) == sorted(FailureReason)
    example = yaml.safe_load((root / "config" / "hospital.example.yaml").read_text())
    assert parse_config(example).http.max_stow_bytes == 4 * 1024**3
    assert HttpConfig().max_stow_bytes == 4 * 1024**3

"""Audit that a hospital SIEM can take: DICOM audit messages (PS3.15 A.5) over syslog (RFC 5424,
octet-counted over TCP per RFC 6587, over TLS per RFC 5425), received by a real local
collector; no patient identifier in any of them; a collector that is down slows nothing."""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from dicomnode.audit.forward import MSGID, AuditForwarder
from dicomnode.audit.syslog import Severity, SyslogMessage, SyslogSender
from dicomnode.config.schema import Config, SyslogConfig
from dicomnode.export.audit import ExportAuditKind, record_attempt
from dicomnode.store.audit import AuditKind, record, set_sink
from dicomnode.store.db import open_database
from dicomnode.store.models import utcnow
from testkit import dicomgen
from testkit.nodeproc import free_port, storescu, toy_export_config, wait_for
from testkit.pki import Pki, make_pki
from testkit.scu import associate_as
from testkit.seriesgen import write_series
from tests.export.peers import Storescp

CANARIES = (dicomgen.CANARY_NAME, dicomgen.CANARY_ID, "CANARY", "ACC1", "19010101")
_HEADER = re.compile(
    rb"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) "
    rb"(?P<msgid>\S+) - \xef\xbb\xbf(?P<msg>.*)\Z",
    re.DOTALL,
)


@dataclass
class Frame:
    """One received syslog message, parsed."""

    raw: bytes
    pri: int
    timestamp: datetime
    hostname: str
    app_name: str
    procid: str
    msgid: str
    xml: ET.Element

    @property
    def event(self) -> str:
        return _event_id(self.xml)

    def participants(self) -> list[dict[str, str]]:
        out = []
        for ap in self.xml.findall("ActiveParticipant"):
            attrs = dict(ap.attrib)
            role = ap.find("RoleIDCode")
            if role is not None:
                attrs["role"] = role.get("csd-code", "")
            out.append(attrs)
        return out

    def objects(self) -> list[tuple[str, str, str]]:
        return [
            (
                po.get("ParticipantObjectID", ""),
                po.get("ParticipantObjectTypeCode", ""),
                _code(po, "ParticipantObjectIDTypeCode"),
            )
            for po in self.xml.findall("ParticipantObjectIdentification")
        ]

    @property
    def outcome(self) -> str:
        event = self.xml.find("EventIdentification")
        assert event is not None
        return event.get("EventOutcomeIndicator", "")


def _code(element: ET.Element, tag: str) -> str:
    child = element.find(tag)
    return "" if child is None else child.get("csd-code", "")


def _event_id(root: ET.Element) -> str:
    event = root.find("EventIdentification")
    assert event is not None
    return _code(event, "EventID")


def parse(raw: bytes) -> Frame:
    """An RFC 5424 message with a DICOM audit message as MSG."""
    match = _HEADER.match(raw)
    assert match, raw[:200]
    root = ET.fromstring(match["msg"])
    assert root.tag == "AuditMessage"
    return Frame(
        raw=raw,
        pri=int(match["pri"]),
        timestamp=datetime.fromisoformat(match["ts"].decode().replace("Z", "+00:00")),
        hostname=match["host"].decode(),
        app_name=match["app"].decode(),
        procid=match["procid"].decode(),
        msgid=match["msgid"].decode(),
        xml=root,
    )


class Collector:
    """A syslog collector on loopback: TCP or TLS (RFC 5425), octet-counting framing."""

    def __init__(self, *, context: ssl.SSLContext | None = None, port: int = 0):
        self.context = context
        self.frames: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", port))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            with self._lock:
                self.connections += 1
            stream = conn.makefile("rb")
            while True:
                length = b""
                while (c := stream.read(1)) not in (b" ", b""):
                    length += c
                if not length:
                    return
                assert length.isdigit(), length
                payload = stream.read(int(length))
                with self._lock:
                    self.frames.append(payload)
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def received(self) -> list[Frame]:
        with self._lock:
            return [parse(raw) for raw in self.frames]

    def wait(self, predicate: Callable[[list[Frame]], bool], what: str, timeout: float = 30):
        return wait_for(lambda: f if predicate(f := self.received()) else None, what, timeout)

    def close(self) -> None:
        self._server.close()


def _events(frames: list[Frame], event: str) -> list[Frame]:
    return [f for f in frames if f.event == event]


def _no_canary(frames: list[Frame]) -> None:
    for frame in frames:
        text = frame.raw.decode("utf-8").casefold()
        for canary in CANARIES:
            assert canary.casefold() not in text, (canary, text)
        for tag in ("PatientName", "PatientID"):
            assert tag.casefold() not in text


# -- a real node -----------------------------------------------------------------------------


def test_a_node_sends_dicom_audit_messages_over_tcp(node_factory, tmp_path):
    collector = Collector()
    pacs = Storescp(tmp_path / "pacs").start()
    try:
        config = toy_export_config(pacs.port, free_port())
        config["node"] = {"allow": [{"ae_title": ae} for ae in ("READYCHECK", "STORESCU")]}
        config["audit"] = {
            "syslog": {"host": "127.0.0.1", "port": collector.port, "transport": "tcp"}
        }
        node = node_factory(**config).start()
        spec = dicomgen.study("syslog", [3])[0]
        assert storescu(node.port, write_series(spec, tmp_path / "in")).returncode == 0
        assert associate_as(node.port, "INTRUDER") == (False, True)
        frames = collector.wait(
            lambda fs: (
                any(
                    f.event == "110104"
                    and f.xml.find("EventIdentification").get("EventActionCode") == "R"
                    for f in fs
                )
                and any(f.event == "110113" and f.outcome == "4" for f in fs)
            ),
            "an export message and a security alert",
            timeout=90,
        )
        node.stop()
        frames = collector.wait(
            lambda fs: len(_events(fs, "110100")) == 2, "application start and stop", timeout=10
        )
    finally:
        pacs.stop()
        collector.close()

    for frame in frames:  # RFC 5424 header
        assert frame.pri in (10 * 8 + 5, 10 * 8 + 4)  # authpriv.notice / authpriv.warning
        assert frame.app_name == "dicomnode" and frame.msgid == MSGID
        assert frame.procid.isdigit() and frame.hostname == socket.gethostname()
        assert abs(time.time() - frame.timestamp.timestamp()) < 600
        source = frame.xml.find("AuditSourceIdentification")
        assert source is not None and source.get("AuditSourceID") == "DICOMNODE"
    _no_canary(frames)

    start, stop = _events(frames, "110100")
    assert [_code(f.xml.find("EventIdentification"), "EventTypeCode") for f in (start, stop)] == [
        "110120",
        "110121",
    ]
    alerts = _events(frames, "110113")
    accepted = [f for f in alerts if f.outcome == "0"]
    (refused,) = [f for f in alerts if f.outcome == "4"]
    callers = {p["UserID"] for f in accepted for p in f.participants()} - {"DICOMNODE"}
    assert callers == {"READYCHECK", "STORESCU"}  # node authentication successes
    assert _code(refused.xml.find("EventIdentification"), "EventTypeCode") == "110126"
    intruder = [p for p in refused.participants() if p["UserID"] == "INTRUDER"]
    assert intruder and intruder[0]["NetworkAccessPointID"] == "127.0.0.1"
    assert intruder[0]["NetworkAccessPointTypeCode"] == "2"
    description = refused.xml.findtext("EventIdentification/EventOutcomeDescription") or ""
    assert "calling AE title not allowed" in description

    transferred = _events(frames, "110104")
    (received,) = [
        f for f in transferred if f.xml.find("EventIdentification").get("EventActionCode") == "C"
    ]
    roles = {p["role"]: p for p in received.participants()}
    assert roles["110153"]["UserID"] == "STORESCU" and roles["110153"]["UserIsRequestor"] == "true"
    assert (
        roles["110152"]["UserID"] == "DICOMNODE" and roles["110152"]["UserIsRequestor"] == "false"
    )
    assert received.objects() == [(spec.study_uid, "2", "110180")]
    study = received.xml.find("ParticipantObjectIdentification")
    assert study is not None and study.get("ParticipantObjectTypeCodeRole") == "3"

    exports = [
        f for f in transferred if f.xml.find("EventIdentification").get("EventActionCode") == "R"
    ]
    delivered = [f for f in exports if f.outcome == "0"]
    assert delivered, "a delivered result is audited"
    for frame in delivered:
        roles = {p["role"]: p for p in frame.participants()}
        assert roles["110153"]["UserID"] == "DICOMNODE"
        assert roles["110153"]["UserIsRequestor"] == "true"
        assert roles["110152"]["UserID"] == "PACS"
        ((uid, kind, id_type),) = frame.objects()
        assert (uid, kind, id_type) == (spec.study_uid, "2", "110180")
        assert frame.xml.find("ParticipantObjectIdentification/SOPClass/Instance") is not None


def test_a_collector_that_is_down_slows_no_store(node_factory, tmp_path):
    down = free_port()  # nothing listens there
    node = node_factory(
        node={"allow": [{"ae_title": ae} for ae in ("READYCHECK", "STORESCU")]},
        audit={"syslog": {"host": "127.0.0.1", "port": down, "transport": "tcp", "queue": 1}},
    ).start()
    spec = dicomgen.study("syslog-down", [20])[0]
    files = write_series(spec, tmp_path / "in")
    started = time.monotonic()
    result = storescu(node.port, files)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(node.stored_files()) == 20
    assert elapsed < 10, f"20 stores took {elapsed:.1f} s with the collector down"
    node.stop()
    log = node.log_text()
    assert log.count("syslog collector unreachable") == 1
    assert log.count("syslog queue full") == 1
    # the database trail is whole
    assert node.query("select count(*) from audit_events where kind = 'series.received'") == [(1,)]


# -- the forwarder in process: TLS, commit semantics, exports, bounded queue ---------------


def _tls_collector(pki: Pki, *, client_certs: bool) -> Collector:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_chain, pki.server_key)
    if client_certs:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca_file)
    return Collector(context=context)


@pytest.fixture
def db(tmp_path):
    database = open_database(f"sqlite:///{tmp_path / 'state.db'}")
    database.upgrade()
    yield database
    set_sink(None)
    database.dispose()


def _forwarder(syslog: dict, **extra) -> AuditForwarder:
    config = Config.model_validate(
        {
            "node": {"ae_title": "AUDITNODE"},
            "destinations": {"pacs": {"ae_title": "PACS", "host": "pacs.example.org", "port": 104}},
            "audit": {"syslog": syslog},
        }
    )
    return AuditForwarder(config, **extra)


def test_tls_with_client_certificates_and_only_committed_rows(tmp_path, db):
    pki = make_pki(tmp_path / "pki")
    collector = _tls_collector(pki, client_certs=True)
    forwarder = _forwarder(
        {
            "host": "localhost",
            "port": collector.port,
            "ca": str(pki.ca_file),
            "cert": str(pki.client_chain),
            "key": str(pki.client_key),
            "app_name": "dn-test",
        },
        lookup=lambda sop: ("1.2.3.4", "1.2.840.10008.5.1.4.1.1.88.33") if sop == "9.8.7" else None,
    )
    forwarder.start()
    set_sink(forwarder)
    try:
        with db.session() as session:
            record(session, AuditKind.SECURITY_ALERT, peer="EVIL@10.1.2.3", detail="rejected: x")
            record(session, AuditKind.SERIES_COMPLETE, subject="1.2.3.4.5")  # DB only
        with pytest.raises(RuntimeError), db.session() as session:
            record(session, AuditKind.SECURITY_ALERT, peer="ROLLEDBACK@10.1.2.3")
            raise RuntimeError("the transaction rolls back: its rows are never sent")
        with db.session() as session:
            for kind in (ExportAuditKind.RETRYING, ExportAuditKind.DELIVERED):
                record_attempt(
                    session,
                    kind,
                    job_id=1,
                    delivery_id=2,
                    destination="pacs",
                    attempt=1,
                    sop_instance_uid="9.8.7",
                    detail="0xA700 out of resources" if kind is ExportAuditKind.RETRYING else "ok",
                )
        frames = collector.wait(lambda fs: len(fs) >= 4, "start, alert and two exports")
    finally:
        set_sink(None)
        forwarder.close()
        collector.close()
    assert collector.connections == 1  # one TLS connection, authenticated both ways
    assert [f.app_name for f in frames] == ["dn-test"] * len(frames)
    assert [f.event for f in frames[:4]] == ["110100", "110113", "110104", "110104"]
    assert b"ROLLEDBACK" not in b"".join(f.raw for f in frames)
    alert = frames[1]
    assert alert.outcome == "4" and alert.pri == 10 * 8 + 4
    (subject,) = alert.xml.findall("ParticipantObjectIdentification")
    assert subject.get("ParticipantObjectID") == "EVIL@10.1.2.3"
    detail = subject.find("ParticipantObjectDetail")
    assert detail is not None and detail.get("type") == "Alert Description"
    failed, delivered = frames[2], frames[3]
    assert (failed.outcome, delivered.outcome) == ("4", "0")
    for frame in (failed, delivered):
        roles = {p["role"]: p for p in frame.participants()}
        assert roles["110152"]["UserID"] == "PACS"
        assert roles["110152"]["NetworkAccessPointID"] == "pacs.example.org"
        assert roles["110152"]["NetworkAccessPointTypeCode"] == "1"
        assert frame.objects() == [("1.2.3.4", "2", "110180")]
    assert "0xA700" in (failed.xml.findtext("EventIdentification/EventOutcomeDescription") or "")


def test_tls_refuses_a_collector_the_ca_did_not_issue(tmp_path, caplog):
    pki, other = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other")
    collector = _tls_collector(other, client_certs=False)
    forwarder = _forwarder({"host": "localhost", "port": collector.port, "ca": str(pki.ca_file)})
    forwarder.sender.max_backoff = 0.2
    forwarder.start()
    try:
        wait_for(
            lambda: "syslog collector unreachable" in caplog.text, "the refusal logged", timeout=10
        )
    finally:
        forwarder.close(timeout=0.2)
        collector.close()
    assert collector.frames == [] and forwarder.sender.sent == 0


def test_the_queue_is_bounded_drops_the_oldest_and_submit_never_waits(caplog):
    caplog.set_level(logging.INFO, logger="dicomnode.audit")
    port = free_port()
    cfg = SyslogConfig(host="127.0.0.1", port=port, transport="tcp", queue=5)

    def render(n: int) -> SyslogMessage:
        return SyslogMessage(utcnow(), Severity.NOTICE, "TEST", f"<m n='{n}'/>".encode())

    sender: SyslogSender[int] = SyslogSender(cfg, render, max_backoff=0.1)
    sender.start()
    try:
        started = time.monotonic()
        for n in range(50):
            sender.submit(n)
        assert time.monotonic() - started < 0.5
        wait_for(lambda: "syslog collector unreachable" in caplog.text, "outage logged", 5)
        assert sender.dropped >= 44  # 5 queued, at most one more in flight
        collector = Collector(port=port)
        wait_for(lambda: sender.pending == 0 and sender.sent >= 5, "the rest sent", timeout=10)
        sender.submit(99)
        wait_for(lambda: any(b"n='99'" in f for f in collector.frames), "99 received", 10)
    finally:
        sender.close()
    numbers = [int(re.search(rb"n='(\d+)'", f).group(1)) for f in collector.frames]
    # the one in flight when the collector went away, then the newest five, then the next
    assert numbers[-1] == 99 and numbers[:-1] == sorted(numbers[:-1])
    assert numbers[-6:-1] == list(range(45, 50)) and len(numbers) <= 7
    assert caplog.text.count("syslog collector unreachable") == 1
    assert caplog.text.count("syslog queue full") == 1
    assert caplog.text.count("syslog collector reachable") == 1
    collector.close()


def test_a_collector_that_stops_reading_never_blocks_submit():
    server = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never reads
    cfg = SyslogConfig(host="127.0.0.1", port=server.getsockname()[1], transport="tcp", queue=100)
    blob = b"x" * 65536
    sender: SyslogSender[int] = SyslogSender(
        cfg, lambda n: SyslogMessage(utcnow(), Severity.NOTICE, "T", blob)
    )
    sender.start()
    try:
        started = time.monotonic()
        for n in range(2000):  # 128 MB: far beyond the socket buffers
            sender.submit(n)
        assert time.monotonic() - started < 1.0
        assert sender.dropped >= 1800
    finally:
        sender.close(timeout=0.1)
        server.close()


@pytest.mark.parametrize(
    ("syslog", "message"),
    [
        ({"host": "h"}, "needs ca"),
        ({"host": "h", "transport": "tcp", "ca": "/x.pem"}, "apply to transport tls"),
        ({"host": "h", "ca": "/ca.pem", "cert": "/c.pem"}, "cert and key go together"),
        ({"host": "h", "transport": "udp", "port": 70000}, "less than or equal to 65535"),
        ({"host": "h", "transport": "ftp"}, "'tls', 'tcp' or 'udp'"),
    ],
)
def test_audit_syslog_config_is_checked(syslog, message):
    with pytest.raises(ValidationError, match=message):
        Config.model_validate({"audit": {"syslog": syslog}})


def test_no_audit_section_no_syslog_and_default_ports():
    assert Config().audit.syslog is None
    ports = [
        SyslogConfig(host="h", transport=t, ca=Path("/ca") if t == "tls" else None).effective_port
        for t in ("tls", "tcp", "udp")
    ]
    assert ports == [6514, 601, 514]


def test_udp_sends_one_message_per_datagram():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    cfg = SyslogConfig(host="127.0.0.1", port=receiver.getsockname()[1], transport="udp")
    sender: SyslogSender[str] = SyslogSender(
        cfg, lambda s: SyslogMessage(utcnow(), Severity.WARNING, MSGID, s.encode())
    )
    sender.start()
    try:
        sender.submit("<AuditMessage/>")
        datagram, _ = receiver.recvfrom(65535)
    finally:
        sender.close()
        receiver.close()
    frame = parse(datagram)  # no octet count: the datagram is the message
    assert frame.pri == 10 * 8 + 4 and frame.msgid == MSGID

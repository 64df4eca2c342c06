"""The destination probe in-process, against a real pynetdicom SCP on loopback: deliveries in
backoff after failed connections are due as soon as their destination answers C-ECHO again."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from dicomnode.export import Attempt, Verdict, claim_due
from dicomnode.export import record as record_attempt
from dicomnode.export.expedite import Prober
from dicomnode.jobs import Backoff, DeliveryState, ResultRecord, claim, succeed
from dicomnode.jobs.models import Delivery
from dicomnode.store.ingest import Store
from dicomnode.store.models import AuditEvent, utcnow
from testkit.nodeproc import wait_for
from testkit.seriesgen import specs, write_series
from tests.export.peers import StatusSCP
from tests.jobs.helpers import complete_all, config, ingest

LONG = Backoff(600, 600)


@pytest.fixture
def scp():
    peer = StatusSCP(0)
    yield peer
    peer.stop()


def _setup(database, tmp_path, pacs_port: int):
    """A succeeded job with one result, its delivery to ``pacs`` failed for want of a
    connection and its delivery to ``busy`` failed with 0xA700; both back off 10 minutes."""
    url = database.engine.url.render_as_string(hide_password=False)
    cfg = config(
        tmp_path,
        url,
        destinations={
            "pacs": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port},
            "busy": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port},
        },
        routes=[
            {
                "name": "ct-toy",
                "pipeline": "toy",
                "when": {"Modality": "CT"},
                "send_to": ["pacs", "busy"],
            }
        ],
        export={"timeout": 2},
    )
    store = Store(cfg.store_path, database, min_free=0)
    (ct,) = specs("probe", 1)
    ingest(store, write_series(ct, tmp_path / "ct"))
    complete_all(database, cfg)
    job = claim(database, "w", lease_seconds=5)
    assert job is not None
    result = ResultRecord("1.2.3.7", "1.2.840.10008.5.1.4.1.1.7", "1.2.3", ct.study_uid, "x/7")
    assert succeed(database, job, [result])
    due = {d.destination: d for d in claim_due(database, "e", results=tmp_path, lease_seconds=60)}
    down = Attempt(Verdict.RETRY, None, "association not established")
    full = Attempt(Verdict.RETRY, 0xA700, "status 0xA700")
    for name, attempt in (("pacs", down), ("busy", full)):
        assert (
            record_attempt(database, due[name], attempt, owner="e", max_attempts=9, backoff=LONG)
            is DeliveryState.PENDING
        )
    return cfg


def _run_after(database, destination: str):
    with database.session() as session:
        return session.scalar(select(Delivery.run_after).where(Delivery.destination == destination))


def _probe(prober: Prober) -> list[str]:
    started = prober.tick()
    wait_for(lambda: not prober.probing, what="probes finished", timeout=15)
    return started


def test_probe_makes_deliveries_due_when_the_destination_answers_again(database, tmp_path, scp):
    cfg = _setup(database, tmp_path, scp.port)
    woken = threading.Event()
    prober = Prober(database, cfg, on_up=woken.set)
    try:
        # down: probed (only the destination that failed for want of a connection), no change
        assert _probe(prober) == ["pacs"]
        assert _run_after(database, "pacs") > utcnow() + timedelta(seconds=590)
        assert not woken.is_set()
        scp.start()
        assert _probe(prober) == ["pacs"]
        assert _run_after(database, "pacs") <= utcnow()
        assert woken.is_set()
        assert _run_after(database, "busy") > utcnow() + timedelta(seconds=590)  # 0xA700: kept
        with database.session() as session:
            audit = session.scalars(
                select(AuditEvent.detail).where(AuditEvent.kind == "delivery.expedited")
            ).all()
        assert audit == ["1 pending deliveries to pacs sent now (destination answers again)"]
        # the store fails again though the peer answers C-ECHO: no second expedite this outage
        with database.session() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.destination == "pacs")
                .values(run_after=utcnow() + timedelta(seconds=600))
            )
        woken.clear()
        assert _probe(prober) == ["pacs"]
        assert _run_after(database, "pacs") > utcnow() + timedelta(seconds=590)
        assert not woken.is_set()
        # delivered: the outage is over and forgotten; the next one is probed afresh
        with database.session() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.destination == "pacs")
                .values(state=DeliveryState.DELIVERED)
            )
        assert _probe(prober) == []
        assert "pacs" not in prober._up
    finally:
        prober.close()


def test_a_destination_that_never_answers_is_probed_once_at_a_time(database, tmp_path):
    # a port that accepts TCP but never answers: each probe waits for its timeout (2 s)
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        cfg = _setup(database, tmp_path, silent.getsockname()[1])
        prober = Prober(database, cfg)
        try:
            assert prober.tick() == ["pacs"]
            assert prober.tick() == []  # still probing: no second probe of the same peer
            assert prober.probing == {"pacs"}
            wait_for(lambda: not prober.probing, what="probe timed out", timeout=15)
            assert _run_after(database, "pacs") > utcnow() + timedelta(seconds=590)
        finally:
            prober.close()
    finally:
        silent.close()


def test_probe_period_is_bounded(tmp_path):
    from dicomnode.config import parse_config
    from dicomnode.errors import ConfigError

    base = {"data_dir": str(tmp_path)}
    assert parse_config({**base, "export": {"probe_seconds": 0}}).export.probe_seconds == 0
    assert parse_config(base).export.probe_seconds == 5
    for bad in (0.1, -1, 601):
        with pytest.raises(ConfigError, match="probe_seconds"):
            parse_config({**base, "export": {"probe_seconds": bad}})


def test_stow_destinations_are_probed_with_http_head():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from dicomnode.config.schema import StowDestination
    from dicomnode.export.expedite import reachable
    from testkit.nodeproc import free_port

    answer = {"status": 503}

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 - http.server API
            self.send_response(answer["status"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
        destination = StowDestination(url=url)
        assert reachable(destination, calling_ae="NODE", timeout=2) == "HTTP 503"  # gateway
        for status in (200, 404, 405, 500):  # the server itself answers
            answer["status"] = status
            assert reachable(destination, calling_ae="NODE", timeout=2) is None
    finally:
        server.shutdown()
        server.server_close()
    closed = StowDestination(url=f"http://127.0.0.1:{free_port()}/dicom-web")
    assert reachable(closed, calling_ae="NODE", timeout=2) == "ConnectionError"

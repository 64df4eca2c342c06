"""STOW-RS as a second kind of destination, against a small real HTTP server."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from dicomnode.config.schema import StowDestination
from dicomnode.export import StowSender, Verdict, deliver_once
from dicomnode.jobs import Delivery, DeliveryState, Worker
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from testkit import dicomgen
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest


class StowServer:
    """Answers POST …/studies with ``status``; counts the DICOM parts it received."""

    def __init__(self, status: int = 200):
        self.status = status
        self.delay = 0.0
        self.parts = 0
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(outer.delay)
                outer.paths.append(self.path)
                if outer.status == 200:
                    outer.parts += body.count(b"Content-Type: application/dicom")
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def stow():
    server = StowServer()
    yield server
    server.stop()


def test_stow_rs_delivers_and_a_client_error_is_dead(tmp_path, stow):
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        destinations={"web": {"url": f"http://127.0.0.1:{stow.port}/dicom-web"}},
        routes=[{"name": "web", "pipeline": "toy", "when": {"Modality": "CT"}, "send_to": ["web"]}],
        pipelines={"toy": {"class": "testkit.toy_pipeline:ToyPipeline", "threshold": 1}},
    )
    db = open_database(cfg.database_url)
    store = Store(cfg.store_path, db, min_free=0)
    first, second = specs("stow", 2)
    ingest(store, write_series(first, tmp_path / "a", value=5))
    complete_all(db, cfg)
    stop = threading.Event()
    worker = Worker(db, cfg, 0, stop)
    worker.start()
    try:
        _wait_deliveries(db, 3)
        assert deliver_once(db, cfg, "test") == 3
        assert stow.parts == 3 and stow.paths == ["/dicom-web/studies"]
        stow.status = 400
        ingest(store, write_series(second, tmp_path / "b", value=5))
        complete_all(db, cfg)
        _wait_deliveries(db, 6)
        assert deliver_once(db, cfg, "test") == 3
    finally:
        stop.set()
        worker.join(15)
    with db.session() as session:
        states = [d.state for d in session.scalars(select(Delivery).order_by(Delivery.id))]
        statuses = {d.last_status for d in session.scalars(select(Delivery))}
    assert states == [DeliveryState.DELIVERED] * 3 + [DeliveryState.DEAD] * 3
    assert statuses == {200, 400}
    db.dispose()


def test_export_timeout_bounds_a_stow_request(tmp_path, stow):
    stow.delay = 5.0
    files = dicomgen.write_series(dicomgen.study("slowstow", [1])[0], tmp_path / "out")
    destination = StowDestination(url=f"http://127.0.0.1:{stow.port}/dicom-web")
    started = time.monotonic()
    (attempt,) = StowSender(destination, timeout=0.5).send(files)
    assert attempt.verdict is Verdict.RETRY and "Timeout" in attempt.detail, attempt
    assert time.monotonic() - started < 4


def _wait_deliveries(db, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            if len(session.scalars(select(Delivery.id)).all()) >= n:
                return
        time.sleep(0.1)
    raise AssertionError("no deliveries")

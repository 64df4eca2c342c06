"""The outbox and its sweep against a real local HTTP server: signature, identifiers, retries,
dead letters, findings conditions; the job's transaction only writes rows."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from typing import Any

import pytest
from sqlalchemy import select

from dicomnode.export.deliveries import deliver_once
from dicomnode.jobs import Backoff, ResultRecord, claim, fail, results_root, succeed
from dicomnode.notify import (
    SIGNATURE_HEADER,
    FindingsSummary,
    Notification,
    NotificationState,
    Outbox,
    WebhookSender,
)
from dicomnode.store.ingest import Store
from dicomnode.store.models import AuditEvent
from testkit.dicomgen import CANARY_ID, CANARY_NAME
from testkit.nodeproc import free_port
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest
from tests.notify.hookserver import hook_server

SECRET = "s3cret-shared-with-the-ris"
NODULE_4MM = {
    "kinds": ["lung_nodule"],
    "regions": [{"kind": "lung_nodule", "diameter_mm": 4.0, "volume_ml": 0.03, "score": 0.9}],
    "masks": [{"kind": "lung_nodule", "array": {"shape": [3, 16, 16], "nonzero": 12}}],
    "classifications": [],
}


def _hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "events": ["job.succeeded"], **extra}


def _setup(tmp_path, url: str, webhooks: dict[str, Any], **notify: Any):
    cfg = config(
        tmp_path,
        url,
        notify={"webhooks": webhooks, "backoff_seconds": 0, "timeout": 2, **notify},
    )
    from dicomnode.store.db import open_database

    db = open_database(cfg.database_url)
    (spec,) = specs("notify", 1)
    ingest(Store(cfg.store_path, db, min_free=0), write_series(spec, tmp_path / "s"))
    complete_all(db, cfg)
    return db, cfg, spec


def _notes(db) -> list[Notification]:
    with db.session() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def _audit(db) -> list[str]:
    with db.session() as session:
        kinds = session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id))
        return [kind for kind in kinds if kind.startswith("notify.")]


def _succeed(db, cfg, findings=None) -> int:
    job = claim(db, "w", lease_seconds=60)
    assert job is not None
    outbox = Outbox(cfg.notify, cfg.store_path)
    assert succeed(db, job, [], findings=findings, notify=outbox)
    return job.id


def test_signed_body_without_identifiers_by_default(tmp_path):
    with hook_server() as server:
        db, cfg, spec = _setup(
            tmp_path,
            f"sqlite:///{tmp_path / 'state.db'}",
            {
                "ris": _hook(server.url, secret=SECRET),
                "research": _hook(server.url + "/ids", include_identifiers=True),
            },
        )
        try:
            findings = FindingsSummary.from_documents([NODULE_4MM])
            job_id = _succeed(db, cfg, findings)
            assert server.received == []  # the job's transaction only wrote the outbox
            assert WebhookSender(db, cfg.notify).sweep() == 2
        finally:
            db.dispose()
        plain, with_ids = sorted(server.wait_for(2), key=lambda r: r.path)
    expected = hmac.new(SECRET.encode(), plain.body, hashlib.sha256).hexdigest()
    assert plain.headers[SIGNATURE_HEADER.lower()] == f"sha256={expected}"
    assert SIGNATURE_HEADER.lower() not in with_ids.headers
    body = json.loads(plain.body)
    assert body["event"] == "job.succeeded" and body["job"]["id"] == job_id
    assert body["route"] == "ct-toy" and body["pipeline"] == "toy"
    assert body["study_uid"] == spec.study_uid and body["series_uids"] == [spec.series_uid]
    assert body["findings"]["lung_nodule"]["count"] == 1
    assert body["findings"]["lung_nodule"]["max_diameter_mm"] == 4.0
    assert "patient" not in body
    for raw in (CANARY_ID, str(CANARY_NAME)):
        assert raw.encode() not in plain.body
    patient = json.loads(with_ids.body)["patient"]
    assert patient["PatientID"] == CANARY_ID


def test_500_then_200_is_retried_and_delivered_once(database, tmp_path):
    url = database.engine.url.render_as_string(hide_password=False)
    with hook_server(script=[500]) as server:
        db, cfg, _ = _setup(tmp_path, url, {"ris": _hook(server.url, secret=SECRET)})
        _succeed(db, cfg)
        sender = WebhookSender(db, cfg.notify)
        assert sender.sweep() == 1
        (note,) = _notes(db)
        assert (note.state, note.last_status) == (NotificationState.PENDING, 500)
        assert sender.sweep() == 1
        assert sender.sweep() == 0  # delivered: never sent again
        first, second = server.wait_for(2)
    assert len(server.received) == 2
    assert first.body == second.body
    assert first.headers["x-dicomnode-delivery"] == second.headers["x-dicomnode-delivery"]
    (note,) = _notes(db)
    assert (note.state, note.attempts, note.last_status) == (NotificationState.DELIVERED, 2, 200)
    assert _audit(db) == ["notify.queued", "notify.failed", "notify.delivered"]


def test_dead_endpoint_is_dead_lettered_after_the_limit(tmp_path):
    dead_url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens
    db, cfg, _ = _setup(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        {"ops": {"url": dead_url, "events": ["job.failed", "job.dead"]}},
        max_attempts=3,
    )
    try:
        job = claim(db, "w", lease_seconds=60)
        assert job is not None
        fail(db, job, "boom", backoff=Backoff(0, 0), notify=Outbox(cfg.notify, cfg.store_path))
        sender = WebhookSender(db, cfg.notify)
        for _ in range(4):
            sender.sweep()
        (note,) = _notes(db)
        assert note.event == "job.failed"
        assert (note.state, note.attempts) == (NotificationState.DEAD, 3)
        assert note.error is not None and note.error.startswith("no answer")
        assert _audit(db) == [
            "notify.queued",
            "notify.failed",
            "notify.failed",
            "notify.dead",
        ]
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("diameter", "told"),
    [(4.0, ["big-or-small"]), (9.5, ["big", "big-or-small"]), (None, [])],
)
def test_findings_condition_fires_only_when_met(tmp_path, diameter, told):
    region = {"kind": "lung_nodule", "diameter_mm": diameter, "score": 0.5}
    doc = {**NODULE_4MM, "regions": [region], "masks": []}
    hooks = {
        "big": {
            "url": "http://127.0.0.1:9/big",
            "events": ["findings"],
            "findings": [{"kind": "lung_nodule", "min_diameter_mm": 8}],
        },
        "big-or-small": {
            "url": "http://127.0.0.1:9/any",
            "events": ["findings"],
            "findings": [
                {"kind": "brain_lesion"},
                {"kind": "lung_nodule", "min_diameter_mm": 3, "min_score": 0.5},
            ],
        },
    }
    db, cfg, _ = _setup(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", hooks)
    try:
        _succeed(db, cfg, FindingsSummary.from_documents([doc]))
        notes = _notes(db)
    finally:
        db.dispose()
    assert sorted(n.webhook for n in notes) == told
    assert all(n.event == "findings" for n in notes)


def test_dead_delivery_is_told(tmp_path):
    """A result that cannot reach its destination (nothing listens) dies at the attempt
    limit; its ``delivery.dead`` notification is written with it."""
    db, cfg, spec = _setup(
        tmp_path,
        f"sqlite:///{tmp_path / 'state.db'}",
        {"ops": {"url": "http://127.0.0.1:9/ops", "events": ["delivery.dead"]}},
    )
    cfg = cfg.model_copy(update={"export": cfg.export.model_copy(update={"max_attempts": 1})})
    try:
        job = claim(db, "w", lease_seconds=60)
        assert job is not None
        source = sorted(cfg.store_path.rglob("*.dcm"))[0]
        result_dir = results_root(cfg) / str(job.id)
        result_dir.mkdir(parents=True)
        shutil.copyfile(source, result_dir / "r.dcm")
        record = ResultRecord(
            "1.2.826.0.1.99.1",
            "1.2.840.10008.5.1.4.1.1.2",
            "1.2.3",
            spec.study_uid,
            f"{job.id}/r.dcm",
        )
        outbox = Outbox(cfg.notify, cfg.store_path)
        assert succeed(db, job, [record], notify=outbox)
        assert _notes(db) == []
        assert deliver_once(db, cfg, "exporter", notify=outbox) == 1
        (note,) = _notes(db)
    finally:
        db.dispose()
    body = json.loads(note.body)
    assert (note.event, body["event"]) == ("delivery.dead", "delivery.dead")
    assert body["delivery"]["destination"] == "pacs"
    assert body["delivery"]["sop_instance_uid"] == "1.2.826.0.1.99.1"
    assert body["results"] == [
        {
            "series_uid": "1.2.3",
            "sop_instance_uid": "1.2.826.0.1.99.1",
            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        }
    ]

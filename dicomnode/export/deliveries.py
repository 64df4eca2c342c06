"""Deliveries: one row per (result instance, destination), sent until delivered or dead.

A due delivery (``pending`` past its ``run_after``, or ``sending`` whose lease expired because
its sender died) is claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, sent with the other
due deliveries of the same destination over one association, and recorded: delivered,
``pending`` again with exponential backoff (connection errors, 0xA7xx), or ``dead`` (0xA9xx,
0xCxxx, or the attempt limit). ``dicomnode retry JOB_ID`` revives dead deliveries.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dicomnode.config.schema import Config, DicomDestination, StowDestination
from dicomnode.export.audit import ExportAuditKind, record_attempt
from dicomnode.export.senders import Attempt, Sender, sender_for
from dicomnode.export.status import Verdict
from dicomnode.jobs.models import Delivery, DeliveryState, Job, JobResult
from dicomnode.jobs.queue import Backoff
from dicomnode.jobs.timeline import Stage, StageMark, add_stages
from dicomnode.notify.outbox import Outbox
from dicomnode.store.db import Database
from dicomnode.store.models import utcnow

__all__ = ["DueDelivery", "Exporter", "claim_due", "deliver_once", "record"]

log = logging.getLogger(__name__)

SenderFactory = Callable[[DicomDestination | StowDestination], Sender]


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery: its id, destination and the result file."""

    id: int
    job_id: int
    destination: str
    path: Path
    sop_instance_uid: str


def claim_due(
    db: Database, owner: str, *, results: Path, lease_seconds: float, limit: int = 64
) -> list[DueDelivery]:
    """Claim up to ``limit`` due deliveries (oldest first) with a lease."""
    now = utcnow()
    with db.session() as session:
        rows = session.execute(
            select(Delivery, JobResult.path, JobResult.sop_instance_uid)
            .join(JobResult, JobResult.id == Delivery.result_id)
            .where(
                or_(
                    (Delivery.state == DeliveryState.PENDING) & (Delivery.run_after <= now),
                    (Delivery.state == DeliveryState.SENDING) & (Delivery.lease_expires_at < now),
                )
            )
            .order_by(Delivery.run_after, Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Delivery)
        ).all()
        due = []
        for delivery, path, sop_uid in rows:
            delivery.state = DeliveryState.SENDING
            delivery.attempts += 1
            delivery.lease_owner = owner
            delivery.lease_expires_at = now + timedelta(seconds=lease_seconds)
            delivery.updated_at = now
            due.append(
                DueDelivery(
                    delivery.id, delivery.job_id, delivery.destination, results / path, sop_uid
                )
            )
        return due


def record(
    db: Database,
    item: DueDelivery,
    attempt: Attempt,
    *,
    owner: str,
    max_attempts: int,
    backoff: Backoff,
    notify: Outbox | None = None,
) -> DeliveryState | None:
    """Store the outcome of one attempt (fenced by the lease) and its audit row.

    Returns the new state; None when the lease was lost (another sender owns the delivery
    now and records its own attempt). ``notify`` puts ``delivery.dead`` in the outbox, in
    the same transaction, when the delivery dies.
    """
    now = utcnow()
    with db.session() as session:
        row = session.get(Delivery, item.id, with_for_update=True)
        if row is None or row.state is not DeliveryState.SENDING or row.lease_owner != owner:
            return None
        row.last_status = attempt.status
        row.lease_owner = None
        row.lease_expires_at = None
        row.updated_at = now
        if attempt.verdict is Verdict.DELIVERED:
            row.state = DeliveryState.DELIVERED
            row.delivered_at = now
            row.error = None
            kind = ExportAuditKind.DELIVERED
            run = session.scalar(select(Job.attempts).where(Job.id == item.job_id)) or 0
            add_stages(
                session, item.job_id, [StageMark(Stage.DELIVERED, now, item.destination, run)]
            )
        elif attempt.verdict is Verdict.DEAD or row.attempts >= max_attempts:
            row.state = DeliveryState.DEAD
            row.error = attempt.detail
            kind = ExportAuditKind.DEAD
        else:
            row.state = DeliveryState.PENDING
            row.run_after = now + backoff.delay(row.attempts)
            row.error = attempt.detail
            kind = ExportAuditKind.RETRYING
        _audit(session, kind, item, attempt, row.attempts)
        if notify is not None and row.state is DeliveryState.DEAD:
            notify.delivery_dead(session, row, item.sop_instance_uid)
        return row.state


def _audit(
    session: Session, kind: ExportAuditKind, item: DueDelivery, attempt: Attempt, number: int
) -> None:
    record_attempt(
        session,
        kind,
        job_id=item.job_id,
        delivery_id=item.id,
        destination=item.destination,
        attempt=number,
        sop_instance_uid=item.sop_instance_uid,
        detail=attempt.detail,
    )


def deliver_once(
    db: Database,
    config: Config,
    owner: str,
    *,
    senders: SenderFactory | None = None,
    notify: Outbox | None = None,
) -> int:
    """Claim and send every due delivery once; returns how many were attempted (``notify``:
    where dead deliveries are told, see :func:`record`)."""
    from dicomnode.jobs.worker import results_root

    export = config.export
    due = claim_due(
        db,
        owner,
        results=results_root(config),
        lease_seconds=export.lease_seconds,
        limit=export.batch,
    )
    if not due:
        return 0
    make = senders or (
        lambda dest: sender_for(dest, calling_ae=config.node.ae_title, timeout=export.timeout)
    )
    backoff = Backoff(export.backoff_seconds, export.max_backoff_seconds)
    by_destination: Mapping[str, list[DueDelivery]] = _group(due)
    for name, items in by_destination.items():
        destination = config.destinations.get(name)
        if destination is None:
            attempts = [Attempt(Verdict.DEAD, None, f"destination {name!r} is not configured")]
            attempts *= len(items)
        else:
            attempts = make(destination).send([item.path for item in items])
        for item, attempt in zip(items, attempts, strict=True):
            state = record(
                db,
                item,
                attempt,
                owner=owner,
                max_attempts=export.max_attempts,
                backoff=backoff,
                notify=notify,
            )
            log.info(
                "delivery %s",
                state.value if state else "lease lost",
                extra={
                    "delivery": item.id,
                    "job": item.job_id,
                    "destination": name,
                    "detail": attempt.detail,
                },
            )
    return len(due)


def _group(due: list[DueDelivery]) -> dict[str, list[DueDelivery]]:
    groups: dict[str, list[DueDelivery]] = defaultdict(list)
    for item in due:
        groups[item.destination].append(item)
    return groups


class Exporter(threading.Thread):
    """A thread that sends due deliveries every ``export.poll_seconds`` (or when woken)."""

    def __init__(self, db: Database, config: Config, *, outbox: Outbox | None = None):
        super().__init__(name="dicomnode-exporter", daemon=True)
        self.db = db
        self.config = config
        self.outbox = outbox
        self.owner = f"{socket.gethostname()}:{os.getpid()}:export"[:96]
        self._stopping = threading.Event()  # not _stop: that shadows Thread._stop
        self._wake = threading.Event()

    def wake(self, _job_id: int | None = None) -> None:
        """Look for due deliveries now (called when a job succeeded)."""
        self._wake.set()

    def run(self) -> None:
        """Loop until stopped (never raises)."""
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                sent = deliver_once(self.db, self.config, self.owner, notify=self.outbox)
            except Exception:  # DB or file problem: logged, tried again next round
                log.exception("delivery round failed")
                sent = 0
            if not sent:
                self._wake.wait(self.config.export.poll_seconds)

    def stop(self, timeout: float = 10) -> None:
        """Stop after the current round."""
        self._stopping.set()
        self._wake.set()
        self.join(timeout)

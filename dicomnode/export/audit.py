"""Audit rows for export attempts: one per delivery attempt, whatever its outcome.

The rows go to the node's ``audit_events`` table in the transaction that records the
delivery's new state. Subjects are the result's SOP Instance UID; details name the job, the
delivery, the destination, the attempt and the peer's answer, never patient identifiers.
"""

from __future__ import annotations

import enum

from sqlalchemy.orm import Session

from dicomnode.store.audit import record

__all__ = ["ExportAuditKind", "record_attempt"]


class ExportAuditKind(str, enum.Enum):
    """What an export audit row records (the outcome of one delivery attempt)."""

    DELIVERED = "delivery.delivered"
    """The destination stored the instance."""
    RETRYING = "delivery.failed"
    """The attempt failed (peer down, 0xA7xx, ...); the delivery is tried again later."""
    DEAD = "delivery.dead"
    """The attempt failed for good (0xA9xx, 0xCxxx, or the attempt limit)."""
    EXPEDITED = "delivery.expedited"
    """Pending deliveries skipped their backoff (send-now, or the destination answers again)."""


def record_attempt(
    session: Session,
    kind: ExportAuditKind | str,
    *,
    job_id: int,
    delivery_id: int,
    destination: str,
    attempt: int,
    sop_instance_uid: str,
    detail: str,
) -> None:
    """Add the audit row of one delivery attempt to ``session`` (committed with its state)."""
    text = f"job {job_id}: delivery {delivery_id} to {destination}, attempt {attempt}: {detail}"
    record(session, ExportAuditKind(kind), subject=sop_instance_uid, detail=text[:2000])

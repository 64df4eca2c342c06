"""Audit rows of notifications: queued, and the outcome of every attempt.

Rows go to the node's ``audit_events`` table in the transaction that changes the
notification. Subjects are the job's series or study UID; details name the notification,
its event, the job, the webhook (by its config name, never its URL) and the answer.
"""

from __future__ import annotations

import enum

from sqlalchemy.orm import Session

from dicomnode.store.audit import record

__all__ = ["NotifyAuditKind", "record_notification"]


class NotifyAuditKind(str, enum.Enum):
    """What a notification audit row records."""

    QUEUED = "notify.queued"
    """A notification was put in the outbox (with the change it tells about)."""
    DELIVERED = "notify.delivered"
    """The webhook answered 2xx."""
    RETRYING = "notify.failed"
    """The attempt failed (connection, timeout, non-2xx); tried again after a backoff."""
    DEAD = "notify.dead"
    """The attempt limit was reached, or the webhook is no longer configured."""


def record_notification(
    session: Session,
    kind: NotifyAuditKind,
    *,
    notification_id: int,
    event: str,
    webhook: str,
    job_id: int | None,
    subject: str | None,
    detail: str = "",
) -> None:
    """Add the audit row of one notification change to ``session``."""
    text = f"notification {notification_id} ({event}, job {job_id}) to {webhook}"
    record(session, kind, subject=subject, detail=(f"{text}: {detail}" if detail else text)[:2000])

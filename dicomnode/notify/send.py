"""Sending the outbox: a periodic sweep POSTs due notifications to their webhooks.

Each sweep claims up to ``notify.batch`` due rows (``FOR UPDATE SKIP LOCKED``: sweeps of
several processes never take the same row), pushing their ``run_after`` past the request's
timeout as a lease; then sends each with urllib3 (a connect and a read timeout, no redirects,
no automatic retries, certificates verified) and records the outcome: ``delivered`` on 2xx,
else a retry after a backoff, ``dead`` at ``notify.max_attempts``. Every attempt leaves an
audit row. A sweep never raises: its failures are logged and the rows come due again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta

import urllib3
from sqlalchemy import select

from dicomnode.jobs.queue import Backoff
from dicomnode.notify.audit import NotifyAuditKind, record_notification
from dicomnode.notify.models import Notification, NotificationState
from dicomnode.notify.schema import NotifyConfig, WebhookConfig
from dicomnode.store.db import Database
from dicomnode.store.models import utcnow

__all__ = ["SIGNATURE_HEADER", "Attempt", "DueNotification", "WebhookSender", "sign"]

log = logging.getLogger(__name__)

#: The header that carries ``sha256=<hex HMAC-SHA256 of the body>`` when a secret is set.
SIGNATURE_HEADER = "X-Dicomnode-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class DueNotification:
    """A claimed notification: what to send, and the attempt number that fences its record."""

    id: int
    webhook: str
    event: str
    job_id: int | None
    subject: str | None
    body: bytes
    attempt: int


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST: delivered or not, the HTTP status (None: no answer)."""

    delivered: bool
    status: int | None
    detail: str


class WebhookSender:
    """Sends due notifications of the node's outbox (one instance per node process).

    Parameters
    ----------
    db : Database
        The state database holding the outbox.
    config : NotifyConfig
        Webhooks (looked up by name at each attempt) and timings.
    """

    def __init__(self, db: Database, config: NotifyConfig):
        self.db = db
        self.config = config
        self.backoff = Backoff(config.backoff_seconds, config.max_backoff_seconds)
        self.pool = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(connect=config.timeout, read=config.timeout),
        )

    def sweep(self) -> int:
        """Send every due notification once; returns how many were attempted (never raises)."""
        try:
            due = self.claim_due()
        except Exception:  # DB unreachable: the next sweep tries again
            log.exception("notification sweep: cannot claim")
            return 0
        for item in due:
            hook = self.config.webhooks.get(item.webhook)
            if hook is None:
                attempt = Attempt(False, None, f"webhook {item.webhook!r} is not configured")
            else:
                attempt = self.post(hook, item)
            try:
                state = self.record(item, attempt, final=hook is None)
            except Exception:  # the lease runs out and the row is sent again
                log.exception("notification %s: cannot record the attempt", item.id)
                continue
            log.info(
                "notification %s",
                state.value if state else "lease lost",
                extra={"notification": item.id, "webhook": item.webhook, "detail": attempt.detail},
            )
        return len(due)

    def claim_due(self) -> list[DueNotification]:
        """Take up to ``batch`` due notifications, leasing each for twice the timeout."""
        now = utcnow()
        lease = timedelta(seconds=2 * self.config.timeout + 5)
        with self.db.session() as session:
            rows = session.scalars(
                select(Notification)
                .where(
                    Notification.state == NotificationState.PENDING,
                    Notification.run_after <= now,
                )
                .order_by(Notification.run_after, Notification.id)
                .limit(self.config.batch)
                .with_for_update(skip_locked=True)
            ).all()
            due = []
            for row in rows:
                row.attempts += 1
                row.run_after = now + lease
                row.updated_at = now
                due.append(
                    DueNotification(
                        row.id,
                        row.webhook,
                        row.event,
                        row.job_id,
                        row.subject,
                        row.body.encode("utf-8"),
                        row.attempts,
                    )
                )
        return due

    def post(self, hook: WebhookConfig, item: DueNotification) -> Attempt:
        """POST the body to ``hook`` (signed when it has a secret)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "dicomnode",
            "X-Dicomnode-Event": item.event,
            "X-Dicomnode-Delivery": str(item.id),
        }
        if hook.secret:
            headers[SIGNATURE_HEADER] = sign(hook.secret, item.body)
        try:
            response = self.pool.request(
                "POST", hook.url, body=item.body, headers=headers, redirect=False
            )
        except urllib3.exceptions.HTTPError as exc:
            return Attempt(False, None, f"no answer: {type(exc).__name__}")
        if 200 <= response.status < 300:
            return Attempt(True, response.status, f"HTTP {response.status}")
        return Attempt(False, response.status, f"HTTP {response.status}")

    def record(
        self, item: DueNotification, attempt: Attempt, *, final: bool = False
    ) -> NotificationState | None:
        """Store the outcome (fenced by the attempt number) with its audit row; the new state,
        or None when another sweep took the row meanwhile."""
        now = utcnow()
        with self.db.session() as session:
            row = session.get(Notification, item.id, with_for_update=True)
            if row is None or row.state is not NotificationState.PENDING:
                return None
            if row.attempts != item.attempt:
                return None
            row.last_status = attempt.status
            row.updated_at = now
            if attempt.delivered:
                row.state, row.error, row.delivered_at = NotificationState.DELIVERED, None, now
                kind = NotifyAuditKind.DELIVERED
            elif final or row.attempts >= self.config.max_attempts:
                row.state, row.error = NotificationState.DEAD, attempt.detail
                kind = NotifyAuditKind.DEAD
            else:
                row.run_after = now + self.backoff.delay(row.attempts)
                row.error = attempt.detail
                kind = NotifyAuditKind.RETRYING
            record_notification(
                session,
                kind,
                notification_id=row.id,
                event=row.event,
                webhook=row.webhook,
                job_id=row.job_id,
                subject=row.subject,
                detail=f"attempt {row.attempts}: {attempt.detail}",
            )
            return row.state

    def close(self) -> None:
        """Close the pooled connections."""
        self.pool.clear()

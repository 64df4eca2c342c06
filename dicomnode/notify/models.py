"""The outbox: one row per (event, webhook), written in the transaction of the change it tells.

A row is ``pending`` until a sweep sends it: ``delivered`` on a 2xx answer, back to
``pending`` with a later ``run_after`` on a failure, ``dead`` after the attempt limit. While a
sweep sends it, ``run_after`` is pushed past the request's timeout (a lease): another sweep,
in this process or another host's, does not take it meanwhile, and it is sent again if the
sender died.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dicomnode.store.models import Base, UTCDateTime, utcnow

__all__ = ["Notification", "NotificationState"]


class NotificationState(str, enum.Enum):
    """Where a notification is."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class Notification(Base):
    """One event to one webhook, with the exact body bytes that are signed and sent."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook: Mapped[str] = mapped_column(String(64), doc="name under notify.webhooks")
    event: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True, index=True)
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True, doc="series/study UID")
    body: Mapped[str] = mapped_column(Text, doc="the JSON body, sent byte for byte (UTF-8)")
    state: Mapped[NotificationState] = mapped_column(
        Enum(
            NotificationState,
            name="notification_state",
            values_callable=lambda e: [m.value for m in e],
            native_enum=False,
            length=16,
        ),
        default=NotificationState.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_notifications_state_run_after", "state", "run_after"),)

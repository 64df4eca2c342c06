"""Deliveries as rows (HTTP API): one per (result instance, destination)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dicomnode.jobs.models import Delivery, DeliveryState, JobResult
from dicomnode.store.db import Database

__all__ = ["delivery_rows"]


def delivery_rows(
    db: Database, *, state: str | DeliveryState | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """The newest deliveries (or those in ``state``), newest first.

    ``next_attempt_at`` is when a pending delivery is tried next (the end of its backoff);
    None for the other states.

    Raises
    ------
    ValueError
        For an unknown state name.
    """
    query = (
        select(Delivery, JobResult.sop_instance_uid, JobResult.series_uid)
        .join(JobResult, JobResult.id == Delivery.result_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if state is not None:
        query = query.where(Delivery.state == DeliveryState(state))
    with db.session() as session:
        rows = session.execute(query).all()
    return [
        {
            "id": d.id,
            "job_id": d.job_id,
            "destination": d.destination,
            "state": d.state.value,
            "attempts": d.attempts,
            "last_status": None if d.last_status is None else f"0x{d.last_status:04X}",
            "error": d.error,
            "sop_instance_uid": sop,
            "series_uid": series,
            "next_attempt_at": (
                d.run_after.isoformat() if d.state is DeliveryState.PENDING else None
            ),
            "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            "updated_at": d.updated_at.isoformat(),
        }
        for d, sop, series in rows
    ]

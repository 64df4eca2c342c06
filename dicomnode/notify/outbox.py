"""Putting notifications in the outbox, inside the transaction of the change they tell.

The queue (:mod:`dicomnode.jobs.queue`) and the exporter call :class:`Outbox` with their own
session: a job's success and its ``job.succeeded`` notification commit together or not at
all, and nothing is sent here (the sweep of :mod:`dicomnode.notify.send` does that). The body
is built now, once, as the exact bytes that are signed and sent on every attempt.

A body holds UIDs, names, states, error texts (scrubbed of identifiers by the job's child)
and the findings summary; PatientID, PatientName and AccessionNumber only for a webhook with
``include_identifiers: true`` (read from one stored header of the job's first input).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomnode.jobs.models import Delivery, Job, JobResult
from dicomnode.notify.audit import NotifyAuditKind, record_notification
from dicomnode.notify.models import Notification, NotificationState
from dicomnode.notify.schema import Event, NotifyConfig, WebhookConfig
from dicomnode.notify.summary import FindingsSummary
from dicomnode.routing.schema import Priority
from dicomnode.store.models import Instance, Series, utcnow

__all__ = ["Outbox", "encode_body"]

log = logging.getLogger(__name__)

#: The identifying attributes a body may carry (``include_identifiers: true``).
_IDENTIFIERS = ("PatientID", "PatientName", "AccessionNumber")


def encode_body(body: dict[str, Any]) -> str:
    """The one JSON text of ``body`` (sorted keys, no spaces, UTF-8 when sent)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Outbox:
    """Writes notifications for the webhooks of ``config`` (a node's ``notify:`` section).

    Parameters
    ----------
    config : NotifyConfig
        The webhooks and what they want.
    store : Path
        Root of the store (headers read for ``include_identifiers``).
    """

    config: NotifyConfig
    store: Path

    def _wanting(self, event: Event, route: str) -> list[tuple[str, WebhookConfig]]:
        return [(n, hook) for n, hook in self.config.webhooks.items() if hook.wants(event, route)]

    def job_event(
        self,
        session: Session,
        event: Event,
        job_id: int,
        *,
        findings: FindingsSummary | None = None,
    ) -> int:
        """Queue ``event`` of job ``job_id`` for each webhook that wants it; returns how many.

        For :attr:`Event.JOB_SUCCEEDED` the ``findings`` event is also queued for each
        webhook one of whose conditions ``findings`` meets.
        """
        wanted = {event, Event.FINDINGS} if event is Event.JOB_SUCCEEDED else {event}
        if not any(wanted & set(hook.events) for hook in self.config.webhooks.values()):
            return 0
        job = session.get(Job, job_id)
        if job is None:
            return 0
        hooks = [(name, hook, event) for name, hook in self._wanting(event, job.route)]
        if event is Event.JOB_SUCCEEDED and findings is not None:
            hooks += [
                (name, hook, Event.FINDINGS)
                for name, hook in self._wanting(Event.FINDINGS, job.route)
                if _fires(hook, findings)
            ]
        if not hooks:
            return 0
        base = self._job_body(session, job, findings)
        for name, hook, told in hooks:
            self._add(session, name, hook, job, {**base, "event": told.value})
        return len(hooks)

    def delivery_dead(self, session: Session, delivery: Delivery, sop_instance_uid: str) -> int:
        """Queue ``delivery.dead`` of ``delivery`` (already marked dead in ``session``)."""
        if not any(Event.DELIVERY_DEAD in hook.events for hook in self.config.webhooks.values()):
            return 0
        job = session.get(Job, delivery.job_id)
        if job is None:
            return 0
        hooks = self._wanting(Event.DELIVERY_DEAD, job.route)
        base = {
            **self._job_body(session, job, None),
            "event": Event.DELIVERY_DEAD.value,
            "delivery": {
                "id": delivery.id,
                "destination": delivery.destination,
                "sop_instance_uid": sop_instance_uid,
                "attempts": delivery.attempts,
                "last_status": delivery.last_status,
                "error": delivery.error,
            },
        }
        for name, hook in hooks:
            self._add(session, name, hook, job, base)
        return len(hooks)

    def _job_body(
        self, session: Session, job: Job, findings: FindingsSummary | None
    ) -> dict[str, Any]:
        results = session.execute(
            select(JobResult.series_uid, JobResult.sop_instance_uid, JobResult.sop_class_uid)
            .where(JobResult.job_id == job.id)
            .order_by(JobResult.id)
        ).all()
        if findings is not None:
            summary: dict[str, Any] | None = findings.as_json()
        else:
            summary = json.loads(job.findings) if job.findings else None
        return {
            "time": utcnow().isoformat().replace("+00:00", "Z"),
            "job": {
                "id": job.id,
                "route": job.route,
                "pipeline": job.pipeline,
                "pipeline_version": job.pipeline_version,
                "priority": Priority.from_rank(job.priority).value,
                "level": job.level,
                "state": job.state.value,
                "attempts": job.attempts,
                "error": job.error,
            },
            "route": job.route,
            "pipeline": job.pipeline,
            "study_uid": job.study_uid,
            "series_uids": [item["series_uid"] for item in json.loads(job.inputs)],
            "results": [
                {"series_uid": s, "sop_instance_uid": i, "sop_class_uid": c} for s, i, c in results
            ],
            "findings": summary,
        }

    def _add(
        self, session: Session, name: str, hook: WebhookConfig, job: Job, body: dict[str, Any]
    ) -> None:
        if hook.include_identifiers:
            body = {**body, "patient": self._identifiers(session, job)}
        now = utcnow()
        row = Notification(
            webhook=name,
            event=body["event"],
            job_id=job.id,
            subject=job.subject,
            body=encode_body(body),
            state=NotificationState.PENDING,
            attempts=0,
            run_after=now,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        record_notification(
            session,
            NotifyAuditKind.QUEUED,
            notification_id=row.id,
            event=row.event,
            webhook=name,
            job_id=job.id,
            subject=job.subject,
        )

    def _identifiers(self, session: Session, job: Job) -> dict[str, str | None]:
        """PatientID, PatientName and AccessionNumber of one stored input header (None each
        when no header can be read: retention may have removed the files)."""
        import pydicom

        inputs = json.loads(job.inputs)
        path = session.scalar(
            select(Instance.path)
            .join(Series)
            .where(Series.series_uid == (inputs[0]["series_uid"] if inputs else ""))
            .order_by(Instance.id)
            .limit(1)
        )
        found: dict[str, str | None] = dict.fromkeys(_IDENTIFIERS)
        if path is None:
            return found
        try:
            ds = pydicom.dcmread(
                self.store / path, stop_before_pixels=True, specific_tags=list(_IDENTIFIERS)
            )
        except Exception as exc:  # an unreadable header: the body says nothing rather than fail
            log.warning("identifiers for a notification unreadable: %s", type(exc).__name__)
            return found
        return {
            key: (str(ds.get(key)) if ds.get(key) is not None else None) for key in _IDENTIFIERS
        }


def _fires(hook: WebhookConfig, findings: FindingsSummary) -> bool:
    """Whether a webhook's ``findings`` conditions hold (none given: anything found)."""
    if not hook.findings:
        return findings.anything
    return any(findings.meets(condition) for condition in hook.findings)

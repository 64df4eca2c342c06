"""Audit rows as DICOM audit messages: which row becomes which message, and the forwarder.

============================  ==========================================================
audit row                     DICOM audit message (PS3.15 A.5.3)
============================  ==========================================================
node start / stop             Application Activity (110100): Application Start / Stop
``association.accepted``      Security Alert (110113), Node Authentication, Success (an
                              informative alert: A.5.3.11 allows reporting successes)
``security.alert``            Security Alert (110113), Node Authentication, Minor failure
                              (the refusal was the mitigation); the reason as
                              EventOutcomeDescription and Alert Description
``series.received``           DICOM Instances Transferred (110104), action C, the study:
                              one message per series new to the node (its first instance),
                              not per instance, naming the sender and the study
``store.failed``              DICOM Instances Transferred (110104), action C, Minor failure
``delivery.delivered``        DICOM Instances Transferred (110104), action R, the node as
``delivery.failed`` / dead    source and the destination; Success / Minor / Serious failure
============================  ==========================================================

The node has no query service (C-FIND, QIDO-RS): no Query (110112) messages. Other rows (job
state, completion, retention) stay in the database only. No message carries a patient
identifier: A.5.3's Patient participant object is left out (see :mod:`.message`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from dicomnode.audit.message import (
    AuditMessage,
    Code,
    Codes,
    Outcome,
    Participant,
    ParticipantObject,
)
from dicomnode.audit.syslog import Severity, SyslogMessage, SyslogSender
from dicomnode.config.schema import Config, DicomDestination
from dicomnode.store.audit import AuditEntry
from dicomnode.store.db import Database
from dicomnode.store.models import utcnow

__all__ = [
    "result_lookup",
    "MSGID",
    "AuditForwarder",
    "Lookup",
    "NodeIdentity",
    "application_activity",
    "to_message",
]

log = logging.getLogger(__name__)

#: RFC 5424 MSGID of the messages, as IHE ATNA (ITI-20) names DICOM audit messages.
MSGID = "IHE+RFC-3881"

#: SOP Instance UID of a result -> (its Study Instance UID, its SOP Class UID), or None.
Lookup = Callable[[str], "tuple[str, str] | None"]

_DELIVERY = re.compile(r"delivery \d+ to (?P<name>\S+?), attempt")
_STUDY = re.compile(r"study (?P<uid>[0-9.]+)")
_DELIVERY_OUTCOMES = {
    "delivery.delivered": Outcome.SUCCESS,
    "delivery.failed": Outcome.MINOR_FAILURE,
    "delivery.dead": Outcome.SERIOUS_FAILURE,
}


@dataclass(frozen=True)
class NodeIdentity:
    """How the node appears in its messages: AE title, host name, process id, destinations
    (name -> user id and address)."""

    ae_title: str
    host: str
    pid: str
    destinations: Mapping[str, tuple[str, str | None]]

    @classmethod
    def from_config(cls, config: Config, *, host: str | None = None) -> NodeIdentity:
        """The identity of the node ``config`` describes, on this machine."""
        destinations: dict[str, tuple[str, str | None]] = {}
        for name, dest in config.destinations.items():
            if isinstance(dest, DicomDestination):
                destinations[name] = (dest.ae_title, dest.host)
            else:
                destinations[name] = (dest.url, _url_host(dest.url))
        return cls(
            config.node.ae_title, host or socket.gethostname(), str(os.getpid()), destinations
        )

    def process(self, role: Code | None = None, *, requestor: bool = False) -> Participant:
        """The node as an active participant."""
        return Participant(
            self.ae_title,
            requestor,
            role=role,
            user_id_type=Codes.STATION_AE_TITLE,
            alternative_user_id=self.pid,
            address=self.host,
        )


def _url_host(url: str) -> str | None:
    match = re.match(r"^https?://(\[[^\]]+\]|[^/:?#]+)", url)
    return match.group(1).strip("[]") if match else None


def _peer(peer: str | None, *, requestor: bool, role: Code | None = None) -> Participant:
    """The calling peer (``AE@address``; ``?`` for an AE title not known yet)."""
    ae, _, address = (peer or "?@").rpartition("@")
    return Participant(
        ae or "?",
        requestor,
        role=role,
        user_id_type=Codes.STATION_AE_TITLE,
        address=address or None,
    )


def application_activity(node: NodeIdentity, *, started: bool, at: datetime) -> AuditMessage:
    """Application Activity: the node started or stopped."""
    return AuditMessage(
        Codes.APPLICATION_ACTIVITY,
        "E",
        at,
        Outcome.SUCCESS,
        node.ae_title,
        event_types=(Codes.APPLICATION_START if started else Codes.APPLICATION_STOP,),
        participants=(node.process(Codes.APPLICATION),),
    )


def to_message(
    entry: AuditEntry, node: NodeIdentity, lookup: Lookup | None = None
) -> AuditMessage | None:
    """The DICOM audit message of an audit row; None for rows that stay in the database."""
    if entry.kind in {"association.accepted", "security.alert"}:
        return _security_alert(entry, node)
    if entry.kind in {"series.received", "store.failed"}:
        return _received(entry, node)
    if entry.kind in _DELIVERY_OUTCOMES:
        return _delivery(entry, node, lookup)
    return None


def _security_alert(entry: AuditEntry, node: NodeIdentity) -> AuditMessage:
    accepted = entry.kind == "association.accepted"
    detail = entry.detail or ("association accepted" if accepted else "refused")
    return AuditMessage(
        Codes.SECURITY_ALERT,
        "E",
        entry.at,
        Outcome.SUCCESS if accepted else Outcome.MINOR_FAILURE,
        node.ae_title,
        event_types=(Codes.NODE_AUTHENTICATION,),
        outcome_description=None if accepted else detail,
        participants=(node.process(), _peer(entry.peer, requestor=False)),
        objects=(
            ParticipantObject(
                entry.peer or "?",
                Codes.NODE_ID,
                type_code=2,
                role=13,  # Security Resource
                details=(("Alert Description", detail),),
            ),
        ),
    )


def _received(entry: AuditEntry, node: NodeIdentity) -> AuditMessage:
    failed = entry.kind == "store.failed"
    objects: tuple[ParticipantObject, ...] = ()
    study = _STUDY.search(entry.detail or "") if not failed else None
    if study is not None:
        objects = (_study(study.group("uid"), life_cycle=1),)
    return AuditMessage(
        Codes.INSTANCES_TRANSFERRED,
        "C",
        entry.at,
        Outcome.MINOR_FAILURE if failed else Outcome.SUCCESS,
        node.ae_title,
        outcome_description=entry.detail if failed else None,
        participants=(
            _peer(entry.peer, requestor=True, role=Codes.SOURCE),
            node.process(Codes.DESTINATION),
        ),
        objects=objects,
    )


def _delivery(entry: AuditEntry, node: NodeIdentity, lookup: Lookup | None) -> AuditMessage:
    outcome = _DELIVERY_OUTCOMES[entry.kind]
    match = _DELIVERY.search(entry.detail or "")
    name = match.group("name") if match else "?"
    user_id, address = node.destinations.get(name, (name, None))
    destination = Participant(
        user_id,
        False,
        role=Codes.DESTINATION,
        user_id_type=Codes.URI if "://" in user_id else Codes.STATION_AE_TITLE,
        address=address,
    )
    objects: tuple[ParticipantObject, ...] = ()
    found = _look_up(lookup, entry.subject)
    if found is not None and entry.subject:
        study_uid, sop_class = found
        objects = (_study(study_uid, instances=((sop_class, entry.subject),)),)
    return AuditMessage(
        Codes.INSTANCES_TRANSFERRED,
        "R",
        entry.at,
        outcome,
        node.ae_title,
        outcome_description=None if outcome is Outcome.SUCCESS else entry.detail,
        participants=(node.process(Codes.SOURCE, requestor=True), destination),
        objects=objects,
    )


def _look_up(lookup: Lookup | None, sop_uid: str | None) -> tuple[str, str] | None:
    if lookup is None or not sop_uid:
        return None
    try:
        return lookup(sop_uid)
    except Exception:  # the message goes without its study rather than not at all
        log.warning("cannot look up the study of an exported instance", exc_info=True)
        return None


def _study(
    uid: str, *, life_cycle: int | None = None, instances: tuple[tuple[str, str], ...] = ()
) -> ParticipantObject:
    return ParticipantObject(
        uid,
        Codes.STUDY_INSTANCE_UID,
        type_code=2,
        role=3,  # Report
        life_cycle=life_cycle,
        instances=instances,
    )


def _severity(message: AuditMessage) -> Severity:
    return Severity.NOTICE if message.outcome is Outcome.SUCCESS else Severity.WARNING


class AuditForwarder:
    """The audit sink (:func:`dicomnode.store.audit.set_sink`) that sends DICOM audit messages
    to the collector of ``audit.syslog``.

    Calling it queues the committed row and returns at once; rendering and sending happen on
    the sender's thread (a lookup for exports runs there too, never on the committing one).
    """

    def __init__(
        self,
        config: Config,
        *,
        lookup: Lookup | None = None,
        hostname: str | None = None,
        context: ssl.SSLContext | None = None,
    ):
        syslog = config.audit.syslog
        if syslog is None:
            raise ValueError("audit.syslog is not configured")
        self.node = NodeIdentity.from_config(config, host=hostname)
        self.lookup = lookup
        self.sender: SyslogSender[AuditEntry | AuditMessage] = SyslogSender(
            syslog, self._render, hostname=hostname, context=context
        )

    def __call__(self, entry: AuditEntry) -> None:
        self.sender.submit(entry)

    def start(self) -> None:
        """Start sending, with an Application Start message first."""
        self.sender.start()
        self.sender.submit(application_activity(self.node, started=True, at=utcnow()))

    def close(self, timeout: float = 2.0) -> None:
        """Queue Application Stop, send what is queued for up to ``timeout`` s, stop."""
        self.sender.submit(application_activity(self.node, started=False, at=utcnow()))
        self.sender.close(timeout)

    def _render(self, item: AuditEntry | AuditMessage) -> SyslogMessage | None:
        message = (
            item if isinstance(item, AuditMessage) else to_message(item, self.node, self.lookup)
        )
        if message is None:
            return None
        return SyslogMessage(message.at, _severity(message), MSGID, message.to_xml())


def result_lookup(db: Database) -> Lookup:
    """A :data:`Lookup` over the node's job results (the study and class of an exported
    instance); it runs on the sender's thread."""
    from sqlalchemy import select

    from dicomnode.jobs.models import JobResult

    def lookup(sop_instance_uid: str) -> tuple[str, str] | None:
        with db.session() as session:
            row = session.execute(
                select(JobResult.study_uid, JobResult.sop_class_uid).where(
                    JobResult.sop_instance_uid == sop_instance_uid
                )
            ).first()
        return (str(row[0]), str(row[1])) if row is not None else None

    return lookup

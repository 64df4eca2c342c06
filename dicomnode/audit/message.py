"""DICOM Audit Messages (PS3.15 A.5): the XML a hospital's audit repository (a SIEM) reads.

One :class:`AuditMessage` is one ``<AuditMessage>``: an event (EventID, action, outcome, event
types), the active participants (processes and nodes, with their roles), the audit source and
the participant objects (studies, nodes). Codes are DCM codes (PS3.16) unless noted.

Patient identifiers never go into a message: where A.5.3 asks for a Patient participant object
(e.g. "DICOM Instances Transferred") it is left out, and studies are named by their Study
Instance UID only. This is the node's rule that no patient identifier leaves it in a log.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "AuditMessage",
    "Code",
    "Codes",
    "Outcome",
    "Participant",
    "ParticipantObject",
    "network_access_point_type",
]


@dataclass(frozen=True)
class Code:
    """A coded value: ``csd-code``, ``codeSystemName``, ``originalText``."""

    code: str
    system: str
    text: str


class Codes:
    """The codes the node's messages use (PS3.16 DCM and RFC 3881)."""

    APPLICATION_ACTIVITY = Code("110100", "DCM", "Application Activity")
    INSTANCES_TRANSFERRED = Code("110104", "DCM", "DICOM Instances Transferred")
    QUERY = Code("110112", "DCM", "Query")
    SECURITY_ALERT = Code("110113", "DCM", "Security Alert")
    APPLICATION_START = Code("110120", "DCM", "Application Start")
    APPLICATION_STOP = Code("110121", "DCM", "Application Stop")
    NODE_AUTHENTICATION = Code("110126", "DCM", "Node Authentication")
    APPLICATION = Code("110150", "DCM", "Application")
    DESTINATION = Code("110152", "DCM", "Destination Role ID")
    SOURCE = Code("110153", "DCM", "Source Role ID")
    STATION_AE_TITLE = Code("110119", "DCM", "Station AE Title")
    STUDY_INSTANCE_UID = Code("110180", "DCM", "Study Instance UID")
    NODE_ID = Code("110182", "DCM", "Node ID")
    URI = Code("12", "RFC-3881", "URI")
    APPLICATION_SERVER = Code("4", "RFC-3881", "Application Server Process")


class Outcome(int, enum.Enum):
    """EventOutcomeIndicator."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


@dataclass(frozen=True)
class Participant:
    """An ActiveParticipant: a process or node taking part in the event."""

    user_id: str
    requestor: bool
    role: Code | None = None
    user_id_type: Code | None = None
    alternative_user_id: str | None = None
    address: str | None = None
    application: bool = True


@dataclass(frozen=True)
class ParticipantObject:
    """A ParticipantObjectIdentification: a study, a node, ...

    ``details`` are (type, text) pairs, written base64-encoded as A.5 asks; ``instances`` are
    (SOP Class UID, SOP Instance UID) pairs, written as ``SOPClass``/``Instance`` elements.
    """

    object_id: str
    id_type: Code
    type_code: int = 2
    role: int | None = None
    life_cycle: int | None = None
    details: tuple[tuple[str, str], ...] = ()
    instances: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AuditMessage:
    """One DICOM audit message.

    Parameters
    ----------
    event : Code
        EventID, e.g. :attr:`Codes.SECURITY_ALERT`.
    action : str
        EventActionCode: ``C``, ``R``, ``U``, ``D`` or ``E``.
    at : datetime
        When it happened (UTC; a naive value is taken as UTC).
    outcome : Outcome
        EventOutcomeIndicator.
    source_id : str
        AuditSourceID: the node (its AE title).
    """

    event: Code
    action: str
    at: datetime
    outcome: Outcome
    source_id: str
    event_types: tuple[Code, ...] = ()
    outcome_description: str | None = None
    participants: tuple[Participant, ...] = ()
    objects: tuple[ParticipantObject, ...] = ()
    site_id: str | None = None

    def __post_init__(self) -> None:
        if self.action not in {"C", "R", "U", "D", "E"}:
            raise ValueError(f"action must be one of C, R, U, D, E, got {self.action!r}")
        object.__setattr__(self, "outcome", Outcome(self.outcome))

    def to_xml(self) -> bytes:
        """The message as UTF-8 XML (with declaration)."""
        root = ET.Element("AuditMessage")
        event = ET.SubElement(
            root,
            "EventIdentification",
            EventActionCode=self.action,
            EventDateTime=_timestamp(self.at),
            EventOutcomeIndicator=str(self.outcome.value),
        )
        _code(event, "EventID", self.event)
        for code in self.event_types:
            _code(event, "EventTypeCode", code)
        if self.outcome_description:
            ET.SubElement(event, "EventOutcomeDescription").text = self.outcome_description
        for participant in self.participants:
            _participant(root, participant)
        source = ET.SubElement(root, "AuditSourceIdentification", AuditSourceID=self.source_id)
        if self.site_id:
            source.set("AuditEnterpriseSiteID", self.site_id)
        _code(source, "AuditSourceTypeCode", Codes.APPLICATION_SERVER)
        for obj in self.objects:
            _object(root, obj)
        return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def network_access_point_type(address: str) -> str:
    """NetworkAccessPointTypeCode: ``2`` for an IP address, ``1`` for a machine name."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "1"
    return "2"


def _timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _code(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    return ET.SubElement(
        parent,
        tag,
        {"csd-code": code.code, "codeSystemName": code.system, "originalText": code.text},
    )


def _participant(root: ET.Element, p: Participant) -> None:
    attrs = {"UserID": p.user_id, "UserIsRequestor": "true" if p.requestor else "false"}
    if p.alternative_user_id:
        attrs["AlternativeUserID"] = p.alternative_user_id
    attrs["UserTypeCode"] = "2" if p.application else "1"
    if p.address:
        attrs["NetworkAccessPointID"] = p.address
        attrs["NetworkAccessPointTypeCode"] = network_access_point_type(p.address)
    element = ET.SubElement(root, "ActiveParticipant", attrs)
    if p.role is not None:
        _code(element, "RoleIDCode", p.role)
    if p.user_id_type is not None:
        _code(element, "UserIDTypeCode", p.user_id_type)


def _object(root: ET.Element, obj: ParticipantObject) -> None:
    attrs = {"ParticipantObjectID": obj.object_id, "ParticipantObjectTypeCode": str(obj.type_code)}
    if obj.role is not None:
        attrs["ParticipantObjectTypeCodeRole"] = str(obj.role)
    if obj.life_cycle is not None:
        attrs["ParticipantObjectDataLifeCycle"] = str(obj.life_cycle)
    element = ET.SubElement(root, "ParticipantObjectIdentification", attrs)
    _code(element, "ParticipantObjectIDTypeCode", obj.id_type)
    for kind, text in obj.details:
        value = base64.b64encode(text.encode("utf-8")).decode("ascii")
        ET.SubElement(element, "ParticipantObjectDetail", type=kind, value=value)
    by_class: dict[str, list[str]] = {}
    for sop_class, instance in obj.instances:
        by_class.setdefault(sop_class, []).append(instance)
    for sop_class, uids in by_class.items():
        cls = ET.SubElement(element, "SOPClass", UID=sop_class, NumberOfInstances=str(len(uids)))
        for uid in uids:
            ET.SubElement(cls, "Instance", UID=uid)

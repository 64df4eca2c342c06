"""dicomnode.export: delivering result objects to the destinations of their route.

C-STORE (pynetdicom) to DICOM peers and STOW-RS (dicomweb-client) to DICOMweb servers; one
delivery row per (result instance, destination), retried with backoff, never duplicated.
"""

from dicomnode.export.audit import ExportAuditKind, record_attempt
from dicomnode.export.deliveries import DueDelivery, Exporter, claim_due, deliver_once, record
from dicomnode.export.senders import Attempt, DicomSender, Sender, StowSender, sender_for
from dicomnode.export.status import Verdict, classify_dimse, classify_http

__all__ = [
    "Attempt",
    "DicomSender",
    "DueDelivery",
    "ExportAuditKind",
    "Exporter",
    "Sender",
    "StowSender",
    "Verdict",
    "claim_due",
    "classify_dimse",
    "classify_http",
    "deliver_once",
    "record",
    "record_attempt",
    "sender_for",
]

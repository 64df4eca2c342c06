"""The audit trail beyond the database: DICOM audit messages (PS3.15 A.5) over syslog.

:class:`AuditForwarder` is the sink the composition root registers with
:func:`dicomnode.store.audit.set_sink` when ``audit.syslog`` is configured; every committed
audit row of a kind A.5 describes becomes a message (see :mod:`.forward` for the mapping).
"""

from __future__ import annotations

import logging

from dicomnode.audit.forward import MSGID, AuditForwarder, NodeIdentity, to_message
from dicomnode.audit.message import AuditMessage, Code, Codes, Outcome
from dicomnode.audit.syslog import SyslogSender

__all__ = [
    "MSGID",
    "AuditForwarder",
    "AuditMessage",
    "Code",
    "Codes",
    "NodeIdentity",
    "Outcome",
    "SyslogSender",
    "to_message",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())

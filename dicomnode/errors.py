"""The exception tree of dicomnode.

Every failure the node reports to a user derives from :class:`DicomNodeError`; each family has
one class, and instances carry the context (file, key, UID) needed to act on them.
"""

from __future__ import annotations

from dicomnode.dimse import Status

__all__ = [
    "ConfigError",
    "DicomNodeError",
    "StoreError",
    "StoreRejected",
    "OutOfSpace",
    "DatabaseError",
    "PermanentError",
    "ProtocolViolation",
    "QueryFailed",
]


class DicomNodeError(Exception):
    """Base class of every error raised by dicomnode."""


class ConfigError(DicomNodeError):
    """The configuration is invalid.

    Parameters
    ----------
    message : str
        What is wrong and, where it helps, the fix.
    source : str, optional
        The file (or "<defaults>") the value came from.
    key : str, optional
        Dotted key path of the offending value, e.g. ``node.port``.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.message = message
        self.source = source
        self.key = key
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class DatabaseError(DicomNodeError):
    """The state database cannot be reached or is not at the expected schema."""


class StoreError(DicomNodeError):
    """Base class of failures to store a received instance."""


class StoreRejected(StoreError):
    """The instance is refused; ``status`` is the DIMSE status to return to the sender.

    Parameters
    ----------
    status : int
        DIMSE C-STORE status (0xA900, 0xC000, ...).
    reason : str
        One line for the log and the audit trail; never contains patient identifiers.
    """

    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(f"0x{status:04X}: {reason}")


class OutOfSpace(StoreRejected):
    """The store's filesystem is below ``storage.min_free``; answered with 0xA700."""

    def __init__(self, reason: str):
        super().__init__(Status.OUT_OF_RESOURCES, reason)


class ProtocolViolation(DicomNodeError):
    """A peer broke the DICOM Upper Layer protocol; the association is aborted.

    Parameters
    ----------
    reason : int
        The A-ABORT reason/diagnostic sent to the peer (PS3.8 9.3.8).
    detail : str
        One line for the security alert; never contains patient identifiers.
    """

    def __init__(self, reason: int, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


class PermanentError(DicomNodeError):
    """A job failure that retrying cannot help (the input itself is at fault).

    Mixed into the error types of the packages where such failures arise (e.g.
    :class:`dicomnode.results.sanitize.UnrepairableHeader`); the worker marks the job dead at
    once instead of putting it back in the queue. Every other error is transient.
    """


class QueryFailed(DicomNodeError):
    """A query to a source failed: no association, a refusal, a failure status or a timeout.

    Parameters
    ----------
    peer : str
        ``AE@host:port`` of the source.
    reason : str
        One line; never contains patient identifiers.
    """

    def __init__(self, peer: str, reason: str):
        self.peer = peer
        self.reason = reason
        super().__init__(f"{peer}: {reason}")

"""Errors of the job queue and its workers."""

from __future__ import annotations

from dicomnode.errors import DicomNodeError

__all__ = ["InvalidJobId", "JobError", "NoSuchJob"]


class JobError(DicomNodeError):
    """A job cannot be found, claimed or changed as asked; the message says which and why."""


class InvalidJobId(JobError):
    """A job id that no job can have: not a whole number in 1 … 2**63 - 1.

    Parameters
    ----------
    value : str
        The id as given (shortened in the message).
    """

    def __init__(self, value: object):
        self.value = str(value)
        shown = self.value if len(self.value) <= 24 else self.value[:21] + "..."
        super().__init__(f"job id {shown!r}: must be a whole number from 1 to {2**63 - 1}")


class NoSuchJob(JobError):
    """A job id in range that no job has (HTTP 404)."""

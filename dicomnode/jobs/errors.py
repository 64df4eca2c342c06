"""Errors of the job queue and its workers."""

from __future__ import annotations

from dicomnode.errors import DicomNodeError

__all__ = ["JobError"]


class JobError(DicomNodeError):
    """A job cannot be found, claimed or changed as asked; the message says which and why."""

"""The one error type of :mod:`dicomnode.results`."""

from __future__ import annotations

from dicomnode.errors import DicomNodeError

__all__ = ["EncodingError"]


class EncodingError(DicomNodeError):
    """Findings could not be encoded as DICOM.

    Parameters
    ----------
    message : str
        What is wrong and, where it helps, the fix.
    output : str, optional
        The output kind being encoded ("sr", "seg", "summary").
    """

    def __init__(self, message: str, *, output: str | None = None):
        self.message = message
        self.output = output
        super().__init__(f"{output}: {message}" if output else message)

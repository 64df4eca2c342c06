"""What a destination's answer means for a delivery: delivered, retry later, or dead."""

from __future__ import annotations

import enum

from dicomnode.dimse import Status

__all__ = ["Verdict", "classify_dimse", "classify_http"]


class Verdict(str, enum.Enum):
    """The fate of one delivery attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


#: Warnings that still mean the instance is stored (coercion, elements discarded, ...).
_STORED_WARNINGS = frozenset(
    {
        Status.OPTIONAL_ATTRIBUTES_UNSUPPORTED,
        Status.ATTRIBUTE_LIST_ERROR,
        Status.ATTRIBUTE_VALUE_OUT_OF_RANGE,
        Status.COERCION_OF_DATA_ELEMENTS,
        Status.ELEMENTS_DISCARDED,
        Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING,
    }
)


def classify_dimse(status: int | None) -> Verdict:
    """Verdict of a C-STORE response status (None: no response, i.e. a connection problem).

    0x0000 and the storage warnings (0xB000, 0xB006, 0xB007) are delivered; 0xA7xx (out of
    resources) and connection problems are retried; 0xA9xx (data set does not match the SOP
    class) and 0xCxxx (cannot understand) will never succeed: dead. Any other status (an
    unknown failure code, 0x0122 SOP class not supported, 0x0124 not authorised...) is
    retried until the attempt limit.
    """
    if status is None:
        return Verdict.RETRY
    if status == Status.SUCCESS or status in _STORED_WARNINGS:
        return Verdict.DELIVERED
    if status & 0xFF00 == Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS or (
        status & 0xF000 == Status.CANNOT_UNDERSTAND
    ):
        return Verdict.DEAD
    return Verdict.RETRY


def classify_http(status: int | None) -> Verdict:
    """Verdict of a STOW-RS response (None: connection problem).

    2xx delivered (202 with warnings too); 408, 429 and 5xx retried; other 4xx (400 bad
    request, 409 conflict, 415 unsupported) are dead.
    """
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.DEAD

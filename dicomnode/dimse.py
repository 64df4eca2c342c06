"""DIMSE status codes the node answers and reads (PS3.7 Annex C, PS3.4 Annex B.2.3).

One name per code, used by the SCP, the store, the demo's receiver and the export's verdicts;
codes are plain ints on the wire, so :class:`Status` is an :class:`~enum.IntEnum`.
"""

from __future__ import annotations

import enum

__all__ = ["Status"]


class Status(enum.IntEnum):
    """C-STORE / C-ECHO response statuses."""

    SUCCESS = 0x0000
    #: Warning: requested optional attributes are not supported.
    OPTIONAL_ATTRIBUTES_UNSUPPORTED = 0x0001
    #: Warning: attribute list error.
    ATTRIBUTE_LIST_ERROR = 0x0107
    #: Warning: attribute value out of range.
    ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116
    #: Failure: unrecognized operation (an N-service request on a storage context).
    UNRECOGNIZED_OPERATION = 0x0211
    #: Refused: out of resources (0xA7xx); the sender may try again later.
    OUT_OF_RESOURCES = 0xA700
    #: Error: data set does not match SOP class (0xA9xx).
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    #: Warning: coercion of data elements.
    COERCION_OF_DATA_ELEMENTS = 0xB000
    #: Warning: elements discarded.
    ELEMENTS_DISCARDED = 0xB006
    #: Warning: data set does not match SOP class (stored anyway).
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007
    #: Error: cannot understand (0xCxxx).
    CANNOT_UNDERSTAND = 0xC000

"""DIMSE status codes the node answers and reads (PS3.7 Annex C, PS3.4 Annex B.2.3).

One name per code, used by the SCP, the store, the demo's receiver and the export's verdicts;
codes are plain ints on the wire, so :class:`Status` is an :class:`~enum.IntEnum`.
"""

from __future__ import annotations

import enum

__all__ = ["Status"]


class Status(enum.IntEnum):
    """C-STORE / C-ECHO / N-service response statuses (and Storage Commitment failure reasons)."""

    SUCCESS = 0x0000
    #: Warning: requested optional attributes are not supported.
    OPTIONAL_ATTRIBUTES_UNSUPPORTED = 0x0001
    #: Warning: attribute list error.
    ATTRIBUTE_LIST_ERROR = 0x0107
    #: Warning: attribute value out of range.
    ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116
    #: Failure: invalid attribute value (N-CREATE/N-SET).
    INVALID_ATTRIBUTE_VALUE = 0x0106
    #: Failure: processing failure (N-services; a commitment failure reason).
    PROCESSING_FAILURE = 0x0110
    #: Failure: duplicate SOP instance (N-CREATE).
    DUPLICATE_SOP_INSTANCE = 0x0111
    #: Failure: no such SOP instance (N-services; a commitment failure reason).
    NO_SUCH_OBJECT_INSTANCE = 0x0112
    #: Failure: invalid argument value (N-ACTION).
    INVALID_ARGUMENT_VALUE = 0x0115
    #: Failure: invalid object instance (N-ACTION on another instance than the well-known one).
    INVALID_OBJECT_INSTANCE = 0x0117
    #: Failure: class-instance conflict (a commitment failure reason).
    CLASS_INSTANCE_CONFLICT = 0x0119
    #: Failure: missing attribute (N-CREATE).
    MISSING_ATTRIBUTE = 0x0120
    #: Failure: referenced SOP class not supported (a commitment failure reason).
    REFERENCED_SOP_CLASS_NOT_SUPPORTED = 0x0122
    #: Failure: no such action (N-ACTION).
    NO_SUCH_ACTION = 0x0123
    #: Failure: resource limitation (N-services; a commitment failure reason).
    RESOURCE_LIMITATION = 0x0213
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

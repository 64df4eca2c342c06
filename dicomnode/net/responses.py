"""C-STORE responses encoded without pydicom: the command set written from its six fields.

pynetdicom 3.0.4 sends each response through ``DIMSEServiceProvider.send_msg``: a new DIMSE
message (a pydicom :class:`~pydicom.dataset.Dataset` of nine command elements, each set
through pydicom's validation), the set encoded twice (once for its group length), then
fragmented. For a C-STORE response that is more CPU than storing a small instance's row.

A C-STORE response without a data set, an Error Comment or an Offending Element is always the
same seven elements in Implicit VR Little Endian (PS3.7 9.3.1.2, E.1): only the Message ID
Being Responded To, the Status and the two Affected SOP UIDs differ. :func:`install` gives an
association a ``send_msg`` that writes those bytes directly (:func:`encode_store_response`,
the same bytes as pynetdicom's, tested) and hands the one P-DATA to the DUL, as pynetdicom
does. Everything else, and a C-STORE response while any handler is bound to
``EVT_DIMSE_SENT`` (which gets pynetdicom's message object), goes through pynetdicom's own
``send_msg``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

__all__ = ["encode_store_response", "install"]

_C_STORE_RSP = 0x8001
_NO_DATA_SET = 0x0101
#: The Message Control Header of a whole command in one fragment (PS3.8 E.2).
_LAST_COMMAND_FRAGMENT = b"\x03"
_PDV_OVERHEAD = 6  # PDV item length (4) + context id (1) + message control header (1)
_US = struct.Struct("<HHLH")  # tag group, element, length 2, value
_HEADER = struct.Struct("<HHL")


def _uid(element: int, uid: str) -> bytes:
    value = uid.encode("ascii")
    if len(value) & 1:
        value += b"\x00"
    return _HEADER.pack(0x0000, element, len(value)) + value


def encode_store_response(
    message_id: int, status: int, sop_class_uid: str | None, sop_instance_uid: str | None
) -> bytes:
    """The command set of a C-STORE response without a data set, Implicit VR Little Endian.

    Parameters
    ----------
    message_id : int
        Message ID Being Responded To (0-65535).
    status : int
        The DIMSE status (0-65535).
    sop_class_uid, sop_instance_uid : str, optional
        Affected SOP Class and Instance UIDs; left out when ``None``.

    Returns
    -------
    bytes
        Command Group Length, Affected SOP Class UID, Command Field, Message ID Being
        Responded To, Command Data Set Type, Status and Affected SOP Instance UID, in tag
        order: the bytes pynetdicom encodes for the same response.
    """
    body = b"".join(
        (
            _uid(0x0002, sop_class_uid) if sop_class_uid is not None else b"",
            _US.pack(0x0000, 0x0100, 2, _C_STORE_RSP),
            _US.pack(0x0000, 0x0120, 2, message_id),
            _US.pack(0x0000, 0x0800, 2, _NO_DATA_SET),
            _US.pack(0x0000, 0x0900, 2, status),
            _uid(0x1000, sop_instance_uid) if sop_instance_uid is not None else b"",
        )
    )
    return _HEADER.pack(0x0000, 0x0000, 4) + struct.pack("<L", len(body)) + body


def _plain_store_response(primitive: object) -> bool:
    """A C-STORE response that :func:`encode_store_response` encodes exactly."""
    return (
        type(primitive) is C_STORE
        and primitive.MessageIDBeingRespondedTo is not None
        and primitive.Status is not None
        and primitive.ErrorComment is None
        and primitive.OffendingElement is None
        and primitive.DataSet is None
        and getattr(primitive, "_dataset_path", None) is None
    )


def install(assoc: Association) -> None:
    """Send ``assoc``'s plain C-STORE responses without pydicom (before it starts)."""
    dimse = assoc.dimse
    send_msg: Callable[..., None] = dimse.send_msg

    def send_store_response(primitive: object, context_id: int) -> None:
        if _plain_store_response(primitive) and not assoc.get_handlers(evt.EVT_DIMSE_SENT):
            assert isinstance(primitive, C_STORE)
            command = encode_store_response(
                int(primitive.MessageIDBeingRespondedTo),  # type: ignore[arg-type]
                int(primitive.Status),  # type: ignore[arg-type]
                primitive.AffectedSOPClassUID,
                primitive.AffectedSOPInstanceUID,
            )
            limit = dimse.maximum_pdu_size
            if not limit or len(command) <= limit - _PDV_OVERHEAD:
                pdata = P_DATA()
                pdata.presentation_data_value_list.append(
                    (context_id, _LAST_COMMAND_FRAGMENT + command)
                )
                dimse.dul.send_pdu(pdata)
                return
        send_msg(primitive, context_id)

    dimse.send_msg = send_store_response  # type: ignore[method-assign,assignment]

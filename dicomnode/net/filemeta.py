"""The File Meta Information of pynetdicom's spool files, encoded without pydicom.

With ``STORE_RECV_CHUNKED_DATASET`` pynetdicom 3.0.4 starts each spool file with File Meta
Information it builds as a pydicom :class:`~pydicom.dataset.FileMetaDataset`
(``create_file_meta``: seven elements, each set through pydicom's validation) and writes
with ``write_file_meta_info`` (encoded twice, once for the group length): per received
instance, more CPU than its database rows. The group is always the same seven elements
(PS3.10 7.1) in Explicit VR Little Endian; only the three UIDs differ.

:func:`install` replaces the two names that pynetdicom's ``dimse_messages`` module calls:
for three plain UIDs (digits and dots, 1 to 64 characters) :func:`encode_file_meta` writes
the same bytes as pydicom (tested); anything else (an empty, long or odd UID from a hostile
command) goes to pydicom's functions as before, with their warnings and errors.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass
from typing import Any

from pydicom.filewriter import write_file_meta_info
from pynetdicom import (
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    dimse_messages,
)
from pynetdicom.dsutils import create_file_meta

__all__ = ["EncodedFileMeta", "encode_file_meta", "install"]

_PLAIN_UID = re.compile(r"[0-9.]{1,64}")
_SHORT = struct.Struct("<HH2sH")  # tag, explicit VR with a 2-byte length
_LONG = struct.Struct("<HH2s2xL")  # tag, explicit VR (OB, UN...) with a 4-byte length


def _element(element: int, vr: bytes, value: bytes, pad: bytes) -> bytes:
    if len(value) & 1:
        value += pad
    return _SHORT.pack(0x0002, element, vr, len(value)) + value


def encode_file_meta(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    implementation_uid: str = PYNETDICOM_IMPLEMENTATION_UID,
    implementation_version: str = PYNETDICOM_IMPLEMENTATION_VERSION,
) -> bytes:
    """File Meta Information (PS3.10 7.1), Explicit VR Little Endian, without the preamble.

    The bytes pydicom's ``write_file_meta_info`` writes for pynetdicom's
    ``create_file_meta`` with the same values: group length, version 00 01, Media Storage
    SOP Class and Instance UIDs, Transfer Syntax UID, Implementation Class UID and Version
    Name. The values must be ASCII.
    """
    body = b"".join(
        (
            _LONG.pack(0x0002, 0x0001, b"OB", 2) + b"\x00\x01",
            _element(0x0002, b"UI", sop_class_uid.encode("ascii"), b"\x00"),
            _element(0x0003, b"UI", sop_instance_uid.encode("ascii"), b"\x00"),
            _element(0x0010, b"UI", transfer_syntax.encode("ascii"), b"\x00"),
            _element(0x0012, b"UI", implementation_uid.encode("ascii"), b"\x00"),
            _element(0x0013, b"SH", implementation_version.encode("ascii"), b" "),
        )
    )
    return _SHORT.pack(0x0002, 0x0000, b"UL", 4) + struct.pack("<L", len(body)) + body


@dataclass(frozen=True)
class EncodedFileMeta:
    """File Meta Information already encoded (what :func:`_create_file_meta` returns)."""

    encoded: bytes


def _create_file_meta(
    *, sop_class_uid: Any, sop_instance_uid: Any, transfer_syntax: Any, **others: Any
) -> Any:
    """``create_file_meta`` for pynetdicom: encoded here when the UIDs are plain."""
    uids = (sop_class_uid, sop_instance_uid, transfer_syntax)
    if not others and all(isinstance(u, str) and _PLAIN_UID.fullmatch(u) for u in uids):
        return EncodedFileMeta(encode_file_meta(sop_class_uid, sop_instance_uid, transfer_syntax))
    return create_file_meta(
        sop_class_uid=sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        transfer_syntax=transfer_syntax,
        **others,
    )


def _write_file_meta_info(fp: Any, file_meta: Any, *args: Any, **kwargs: Any) -> None:
    """``write_file_meta_info`` for pynetdicom: writes an :class:`EncodedFileMeta` as is."""
    if isinstance(file_meta, EncodedFileMeta):
        fp.write(file_meta.encoded)
        return
    write_file_meta_info(fp, file_meta, *args, **kwargs)


@functools.cache
def install() -> None:
    """Route pynetdicom's spool files' File Meta Information through this module (once)."""
    if (
        dimse_messages.create_file_meta is not create_file_meta
        or dimse_messages.write_file_meta_info is not write_file_meta_info
    ):
        raise RuntimeError(
            "pynetdicom.dimse_messages' file meta functions are not pydicom's and "
            "pynetdicom's: the pinned pynetdicom 3.0.4 is expected"
        )
    dimse_messages.create_file_meta = _create_file_meta  # type: ignore[assignment]
    dimse_messages.write_file_meta_info = _write_file_meta_info  # type: ignore[assignment]

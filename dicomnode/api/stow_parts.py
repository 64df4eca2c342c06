"""The parts of a STOW-RS request: streamed into spool files, judged, then stored.

:class:`PartSpooler` is fed the request body as it arrives and, through python-multipart's
streaming parser (callbacks; no part is held in memory), writes each part to
``<store>/.incoming/stow-*``: a zeroed 128-byte preamble and ``DICM``, then the part's File
Meta Information and data set (a part that starts with its File Meta Information, as pydicom
writes a data set without a preamble, is accepted; the sender's preamble is never kept). Its
File Meta Information names the instance and its transfer syntax; a part that is not a PS3.10
file, of another media type or in a refused (deflated, unknown) syntax fails there.
:func:`store_parts` hands the others to the store path that C-STORE uses
(:class:`dicomnode.net.receive.Receiver`) and collects :class:`StowOutcome`.
"""

from __future__ import annotations

import enum
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError

from dicomnode.dimse import Status
from dicomnode.errors import OutOfSpace
from dicomnode.net.receive import Receiver
from dicomnode.net.scp import ACCEPTED_TRANSFER_SYNTAXES
from dicomnode.store.models import SeriesOrigin
from dicomnode.store.uids import uid_problem

__all__ = [
    "MAX_PARTS",
    "SPOOL_PREFIX",
    "FailureReason",
    "MalformedBody",
    "Part",
    "PartSpooler",
    "StowOutcome",
    "media_type",
    "store_parts",
]

#: Names of STOW-RS spool files in ``<store>/.incoming`` (pynetdicom's are ``scp-``).
SPOOL_PREFIX = "stow-"
#: Free space is checked again after this many bytes of spooled parts.
_SPACE_CHECK_BYTES = 16 * 1024 * 1024
#: Parts in one request (each is a spool file until stored).
MAX_PARTS = 100_000
#: Bytes of a refused part still spooled: its File Meta Information names the instance.
_HEAD_BYTES = 64 * 1024
#: Preamble and ``DICM``.
_PREFIX_BYTES = 132
_ACCEPTED_SYNTAXES = frozenset(str(ts) for ts in ACCEPTED_TRANSFER_SYNTAXES)


class FailureReason(enum.IntEnum):
    """Failure Reason (0008,1197) values of a STOW-RS answer (PS3.18 Table I.2-2).

    The store's refusals keep their DIMSE status (the same codes).
    """

    #: Free space below ``storage.min_free``, a full filesystem, a write or index error.
    OUT_OF_RESOURCES = Status.OUT_OF_RESOURCES
    #: The data set's SOP Class/Instance UID differs from its File Meta Information, a UID is
    #: already stored elsewhere, or (``/studies/{study}``) it belongs to another study.
    DATA_SET_DOES_NOT_MATCH = Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS
    #: Not a PS3.10 file (no File Meta Information), a part of another
    #: media type, an unparseable or truncated data set, an invalid UID.
    CANNOT_UNDERSTAND = Status.CANNOT_UNDERSTAND
    #: A transfer syntax the node does not accept (deflated ones, unknown ones).
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122


class MalformedBody(Exception):
    """The body is not a complete multipart/related message; the message says why."""


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """The media type of a ``Content-Type`` value (lower case) and its parameters (names in
    lower case, values unquoted)."""
    media, _, params = content_type.partition(";")
    options: dict[str, str] = {}
    for param in params.split(";"):
        key, _, value = param.partition("=")
        options[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), options


@dataclass
class Part:
    """One part of the request: its spool file, the UIDs of its File Meta Information, and
    the failure that keeps it out of the store (None: to be stored)."""

    index: int
    path: Path | None = None
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    failure: tuple[int, str] | None = None
    size: int = 0

    def fail(self, reason: int, text: str) -> None:
        """Keep the first failure."""
        if self.failure is None:
            self.failure = (int(reason), text)


@dataclass
class _Header:
    name: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)


class PartSpooler:
    """Split a multipart body into spool files, one per part, as the bytes arrive.

    Not thread-safe: one request feeds it from one worker thread at a time.

    Parameters
    ----------
    receiver : Receiver
        Its store says where to spool and how much space must stay free.
    boundary : bytes
        The multipart boundary of the request's ``Content-Type``.
    """

    def __init__(self, receiver: Receiver, boundary: bytes):
        self.store = receiver.store
        self.parts: list[Part] = []
        self.ended = False
        self._file: IO[bytes] | None = None
        self._head: bytearray | None = None  # the part's first bytes, until they are judged
        self._header = _Header()
        self._headers: dict[str, str] = {}
        self._since_check = 0
        callbacks: Any = {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._header.name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header.value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_end": self._ended,
        }
        self._parser = MultipartParser(boundary, callbacks)

    def feed(self, chunk: bytes) -> None:
        """Parse ``chunk``; raises :class:`MalformedBody`."""
        if self.ended:
            return  # the epilogue after the closing delimiter
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise MalformedBody(f"malformed multipart body: {exc}") from None

    def finish(self) -> list[Part]:
        """The parts, once the body has ended; raises :class:`MalformedBody` when it was cut
        short or held no part."""
        if not self.ended:
            raise MalformedBody("the multipart body ends before its closing delimiter")
        if not self.parts:
            raise MalformedBody("the multipart body holds no part")
        return self.parts

    def discard(self) -> None:
        """Close the open spool file and remove every spool file not consumed by the store."""
        self._close()
        for part in self.parts:
            if part.path is not None:
                part.path.unlink(missing_ok=True)

    # -- parser callbacks (on the feeding thread) --------------------------------------------

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise MalformedBody(f"more than {MAX_PARTS} parts")
        self.parts.append(Part(index=len(self.parts)))
        self._headers = {}

    def _header_end(self) -> None:
        name = self._header.name.decode("latin-1").strip().lower()
        self._headers[name] = self._header.value.decode("latin-1").strip()
        self._header = _Header()

    def _headers_finished(self) -> None:
        part = self.parts[-1]
        media = self._headers.get("content-type", "application/dicom").split(";")[0]
        media = media.strip().lower()
        if media != "application/dicom":
            part.fail(FailureReason.CANNOT_UNDERSTAND, f"part of type {media!r}, not DICOM")
            return
        try:
            self.store.check_space()
        except OutOfSpace as exc:
            part.fail(FailureReason.OUT_OF_RESOURCES, exc.reason)
        descriptor, name = tempfile.mkstemp(dir=self.store.incoming, prefix=SPOOL_PREFIX)
        part.path = Path(name)
        self._file = os.fdopen(descriptor, "wb")
        self._head = bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self.parts[-1]
        if self._file is None:
            return
        if self._head is not None:  # the first bytes decide how the part starts
            self._head += memoryview(data)[start:end]
            if len(self._head) >= _PREFIX_BYTES:
                self._start(part)
            return
        self._write(part, memoryview(data)[start:end])

    def _start(self, part: Part) -> None:
        """Write the part's PS3.10 header: a zeroed preamble, ``DICM``, its File Meta
        Information. A part that starts with its File Meta Information (no preamble, as
        pydicom writes a data set without one) gets the preamble; the sender's preamble is
        never kept (it may hold anything). Other parts fail."""
        head, self._head = bytes(self._head or b""), None
        if len(head) >= _PREFIX_BYTES and head[128:_PREFIX_BYTES] == b"DICM":
            body = head[_PREFIX_BYTES:]
        elif head.startswith(b"\x02\x00"):  # group 0002 in little endian: File Meta Information
            body = head
        else:
            part.fail(FailureReason.CANNOT_UNDERSTAND, "not a PS3.10 file (no file meta)")
            return
        self._write(part, bytes(128) + b"DICM" + body)

    def _write(self, part: Part, data: bytes | memoryview) -> None:
        assert self._file is not None
        if part.failure is not None and part.size >= _HEAD_BYTES:
            return  # refused already: its head is kept for the UIDs of its file meta
        try:
            self._file.write(data)
        except OSError as exc:
            part.fail(FailureReason.OUT_OF_RESOURCES, f"cannot spool: {exc.strerror}")
            part.size = _HEAD_BYTES  # write no more of it
            return
        part.size += len(data)
        self._since_check += len(data)
        if self._since_check >= _SPACE_CHECK_BYTES:
            self._since_check = 0
            try:
                self.store.check_space()
            except OutOfSpace as exc:
                part.fail(FailureReason.OUT_OF_RESOURCES, exc.reason)

    def _end(self) -> None:
        part = self.parts[-1]
        if self._head is not None and self._file is not None:
            self._start(part)  # a part shorter than a preamble
        self._close()
        if part.path is not None and part.size:
            _read_meta(part)
        elif part.path is not None:
            part.fail(FailureReason.CANNOT_UNDERSTAND, "not a PS3.10 file (no file meta)")

    def _ended(self) -> None:
        self.ended = True

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _read_meta(part: Part) -> None:
    """Take the SOP Class/Instance UIDs of the spooled part's File Meta Information and check
    its transfer syntax; unreadable file meta fails the part (0xC000)."""
    assert part.path is not None
    try:
        meta = read_file_meta_info(part.path)
        sop_class = str(meta.get("MediaStorageSOPClassUID", "") or "").strip("\0 ")
        sop_instance = str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip("\0 ")
        syntax = str(meta.get("TransferSyntaxUID", "") or "").strip("\0 ")
    except Exception as exc:  # pydicom raises many kinds on hostile input
        part.fail(FailureReason.CANNOT_UNDERSTAND, f"unreadable file meta ({type(exc).__name__})")
        return
    if not uid_problem(sop_class) and not uid_problem(sop_instance):
        part.sop_class_uid, part.sop_instance_uid = sop_class, sop_instance
    if not (sop_class and sop_instance and syntax):
        part.fail(FailureReason.CANNOT_UNDERSTAND, "file meta lacks SOP class, instance or syntax")
    elif syntax not in _ACCEPTED_SYNTAXES:
        part.fail(
            FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
            f"transfer syntax {syntax[:64]} not accepted",
        )


@dataclass
class StowOutcome:
    """The parts of a request once stored: (SOP class, instance) pairs stored, and failed
    with their Failure Reason."""

    stored: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        """200 all stored, 202 some failed, 409 none stored (PS3.18 10.5.3)."""
        if not self.failed:
            return 200
        return 202 if self.stored else 409

    def answer(self) -> dict[str, Any]:
        """The Store Instances Response Module in the DICOM JSON model."""
        response = Dataset()
        response.RetrieveURL = None
        if self.failed:
            response.FailedSOPSequence = [
                _reference(cls, inst, FailureReason=reason) for cls, inst, reason in self.failed
            ]
        if self.stored:
            response.ReferencedSOPSequence = [
                _reference(cls, inst, RetrieveURL=None) for cls, inst in self.stored
            ]
        return response.to_json_dict()


def _reference(sop_class: str, sop_instance: str, **extra: Any) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class or None
    item.ReferencedSOPInstanceUID = sop_instance or None
    for keyword, value in extra.items():
        setattr(item, keyword, value)
    return item


def store_parts(
    receiver: Receiver,
    parts: list[Part],
    peer: str,
    study: str | None,
    origin: SeriesOrigin = SeriesOrigin.RECEIVED,
) -> StowOutcome:
    """Store each part that passed the spooling checks; account for the others.

    ``origin`` is ``prior`` for the parts of a WADO-RS response (priors the node retrieved).
    """
    outcome = StowOutcome()
    for part in parts:
        if part.failure is None and part.path is not None:
            received = receiver.receive(
                part.path,
                sop_class_uid=part.sop_class_uid,
                sop_instance_uid=part.sop_instance_uid,
                peer=peer,
                study_uid=study,
                origin=origin,
            )
            part.path = None  # consumed
            if received.result is not None:
                outcome.stored.append((part.sop_class_uid, received.result.sop_instance_uid))
                continue
            part.fail(received.status, received.reason or "refused")
        else:
            assert part.failure is not None
            receiver.refused(peer, *part.failure)
        assert part.failure is not None
        outcome.failed.append((part.sop_class_uid, part.sop_instance_uid, part.failure[0]))
    return outcome

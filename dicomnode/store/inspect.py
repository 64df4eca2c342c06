"""Read what the store needs from a received file, and check the file is whole.

Only the header is parsed: by :func:`dicomnode.store.prefix.read_prefix` in the common case
(explicit VR little endian, a flat header), else by pydicom, with the same results. Pixel
data is never decoded nor read into memory: its element (and any encapsulated fragments) is
walked by seeking, to check that every declared length fits in the file. pydicom alone is
lenient here: it returns a truncated dataset without complaint.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicomnode.dimse import Status
from dicomnode.errors import StoreRejected
from dicomnode.store.prefix import LONG_VRS, VRS, read_prefix

__all__ = ["ReceivedHeader", "read_header"]

_PIXEL_DATA = 0x7FE00010
_PIXEL_TAGS = {_PIXEL_DATA, 0x7FE00008, 0x7FE00009}
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_SEQ_DELIM = 0xFFFEE0DD
_IS_MIN, _IS_MAX = -(2**31), 2**31 - 1

#: How a value is looked up by keyword: as text (stripped of spaces and NULs) or as an IS or
#: US number (``None`` when absent, empty or out of range).
_Text = Callable[[str], str | None]
_Int = Callable[[str], int | None]


@dataclass(frozen=True)
class ReceivedHeader:
    """The identifying attributes of a received instance (no patient data)."""

    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_uid: str | None
    series_uid: str | None
    transfer_syntax_uid: str
    modality: str | None
    series_number: int | None
    series_description: str | None


def read_header(path: Path) -> ReceivedHeader:
    """Parse the header of a Part 10 file and verify its structure.

    Raises
    ------
    StoreRejected
        0xC000 when the file cannot be parsed or is truncated.
    """
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as fh:
            prefix = read_prefix(fh, size)
            if prefix is None:
                fh.seek(0)
                return _read_with_pydicom(fh, size)
            fh.seek(prefix.end)
            pixel_length = _walk_tail(fh, size, little=True, implicit=False)
            text, number = prefix.texts.get, prefix.numbers.get
            _check_pixel_data(
                pixel_length,
                lambda: _native_length(text, number),
                encapsulated=UID(prefix.transfer_syntax_uid).is_encapsulated,
            )
            return _header(prefix.transfer_syntax_uid, text, number)
    except StoreRejected:
        raise
    except Exception as exc:  # pydicom raises many kinds on hostile input; none may escape
        raise StoreRejected(
            Status.CANNOT_UNDERSTAND, f"unparseable dataset: {type(exc).__name__}"
        ) from None


def _read_with_pydicom(fh: BinaryIO, size: int) -> ReceivedHeader:
    """:func:`read_header` of any file, by pydicom (``fh`` at its start)."""
    ds = dcmread(fh, stop_before_pixels=True, defer_size=4096)
    _check_lengths(ds, size)
    _check_stop(ds, fh.tell())
    syntax = ds.file_meta.TransferSyntaxUID
    little = syntax.is_little_endian
    implicit = syntax.is_implicit_VR
    tail = fh.tell()
    _check_encoding(fh, implicit=implicit)
    fh.seek(tail)
    pixel_length = _walk_tail(fh, size, little=little, implicit=implicit)

    def text(keyword: str) -> str | None:
        return _text(ds, keyword)

    def number(keyword: str) -> int | None:
        return _int(ds, keyword)

    _check_pixel_data(
        pixel_length, lambda: _native_length(text, number), encapsulated=syntax.is_encapsulated
    )
    return _header(str(syntax), text, number)


def _header(transfer_syntax: str, text: _Text, number: _Int) -> ReceivedHeader:
    return ReceivedHeader(
        sop_class_uid=text("SOPClassUID"),
        sop_instance_uid=text("SOPInstanceUID"),
        study_uid=text("StudyInstanceUID"),
        series_uid=text("SeriesInstanceUID"),
        transfer_syntax_uid=transfer_syntax,
        modality=text("Modality"),
        series_number=number("SeriesNumber"),
        series_description=(text("SeriesDescription") or None),
    )


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ")


def _int(ds: Dataset, keyword: str) -> int | None:
    """An IS value, or None when absent, not a number or outside the IS range (PS3.5 6.2).

    The range check keeps a hostile value (thirty digits, ``1e400``) out of the index's
    32-bit column: it would fail the insert instead of being dropped.
    """
    try:
        value = ds.get(keyword)
        number = None if value is None or value == "" else int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and _IS_MIN <= number <= _IS_MAX else None


def _check_lengths(ds: Dataset, size: int) -> None:
    """Every top-level header element's declared value must lie inside the file."""
    for elem in ds._dict.values():
        if (
            isinstance(elem, RawDataElement)
            and elem.length != _UNDEFINED
            and elem.value_tell + elem.length > size
        ):
            raise StoreRejected(Status.CANNOT_UNDERSTAND, "truncated dataset (header element)")


def _check_stop(ds: Dataset, position: int) -> None:
    """pydicom stops quietly at 1-7 trailing bytes (a cut element header): refuse those.

    Where the last element read ends is known when it is raw with a defined length; the
    reader must then stand right there (at the pixel data or at the end of the file).
    """
    elements = list(ds._dict.values())
    last = elements[-1] if elements else None
    if (
        isinstance(last, RawDataElement)
        and last.length != _UNDEFINED
        and last.value_tell + last.length != position
    ):
        raise StoreRejected(Status.CANNOT_UNDERSTAND, "truncated dataset (element header)")


def _walk_tail(fh: BinaryIO, size: int, *, little: bool, implicit: bool) -> int | None:
    """Walk the elements after the header (pixel data and anything after it) by seeking.

    Returns the declared length of Pixel Data (7FE0,0010) (:data:`_UNDEFINED` when
    encapsulated), or ``None`` when the file has none.
    """
    order = "<" if little else ">"
    pixel_length = None
    while fh.tell() < size:
        tag, length = _element_header(fh, order, implicit)
        if tag == _PIXEL_DATA:
            pixel_length = length
        if length == _UNDEFINED:
            if tag not in _PIXEL_TAGS:
                return pixel_length  # an undefined-length sequence after the pixel data
            _walk_fragments(fh, size, order)
            continue
        end = fh.tell() + length
        if end > size:
            raise StoreRejected(Status.CANNOT_UNDERSTAND, "truncated dataset (pixel data)")
        fh.seek(end)
    return pixel_length


def _check_encoding(fh: BinaryIO, *, implicit: bool) -> None:
    """The data set's first element must be encoded as the transfer syntax says.

    pydicom reads implicit VR bytes on an explicit VR context (and the reverse) with a warning
    and no error; the file would be stored under a transfer syntax it does not have. Where
    the data set begins is known from the File Meta group length (0002,0000).
    """
    fh.seek(128)
    preamble = fh.read(16)
    if len(preamble) < 16 or preamble[:4] != b"DICM" or preamble[4:10] != b"\x02\x00\x00\x00UL":
        return  # no group length: nothing to check against
    (group_length,) = struct.unpack("<L", preamble[12:16])
    fh.seek(144 + group_length)
    first = fh.read(8)
    if len(first) < 8:
        return  # an empty data set: read_header's own checks speak for it
    looks_explicit = first[4:6] in VRS
    if implicit and looks_explicit:
        raise StoreRejected(
            Status.CANNOT_UNDERSTAND, "explicit VR data set on an implicit VR transfer syntax"
        )
    if not implicit and not looks_explicit:
        raise StoreRejected(
            Status.CANNOT_UNDERSTAND, "implicit VR data set on an explicit VR transfer syntax"
        )


def _check_pixel_data(
    length: int | None, native_length: Callable[[], int | None], *, encapsulated: bool
) -> None:
    """Pixel Data must be encapsulated exactly when the transfer syntax compresses, and native
    pixel data must be as long as the header says (PS3.5 8.1.1; one pad byte allowed).

    ``native_length`` is asked only for native pixel data (pydicom decodes values lazily).
    """
    if length is None:
        return
    if encapsulated != (length == _UNDEFINED):
        raise StoreRejected(
            Status.CANNOT_UNDERSTAND,
            "native pixel data on a compressed transfer syntax"
            if encapsulated
            else "encapsulated pixel data on an uncompressed transfer syntax",
        )
    if encapsulated:
        return
    expected = native_length()
    if expected is not None and length not in (expected, expected + (expected & 1)):
        raise StoreRejected(
            Status.CANNOT_UNDERSTAND,
            f"pixel data is {length} bytes, the header declares {expected}",
        )


def _native_length(text: _Text, number: _Int) -> int | None:
    """Rows × Columns × samples × frames × BitsAllocated / 8, or ``None`` when not declared."""
    rows, columns, bits = number("Rows"), number("Columns"), number("BitsAllocated")
    if not rows or not columns or not bits or rows < 0 or columns < 0 or bits < 0:
        return None
    samples = number("SamplesPerPixel") or 1
    frames = number("NumberOfFrames") or 1
    if samples < 0 or frames < 0:
        return None
    if text("PhotometricInterpretation") == "YBR_FULL_422":
        samples = 2  # two chroma samples shared by each pair of pixels (PS3.3 C.7.6.3.1.2)
    bits_total = rows * columns * samples * frames * bits
    return (bits_total + 7) // 8


def _element_header(fh: BinaryIO, order: str, implicit: bool) -> tuple[int, int]:
    raw = fh.read(8)
    if len(raw) < 8:
        raise StoreRejected(Status.CANNOT_UNDERSTAND, "truncated dataset (element header)")
    group, elem = struct.unpack(order + "HH", raw[:4])
    tag = (group << 16) | elem
    if implicit:
        (length,) = struct.unpack(order + "L", raw[4:])
        return tag, length
    vr = raw[4:6]
    if vr in LONG_VRS:
        more = fh.read(4)
        if len(more) < 4:
            raise StoreRejected(Status.CANNOT_UNDERSTAND, "truncated dataset (element header)")
        (length,) = struct.unpack(order + "L", more)
        return tag, length
    if not (vr.isalpha() and vr.isupper()):
        raise StoreRejected(Status.CANNOT_UNDERSTAND, "unparseable dataset (bad VR)")
    (length,) = struct.unpack(order + "H", raw[6:])
    return tag, length


def _walk_fragments(fh: BinaryIO, size: int, order: str) -> None:
    """Skip the fragments of encapsulated pixel data up to the sequence delimiter."""
    while True:
        raw = fh.read(8)
        if len(raw) < 8:
            raise StoreRejected(Status.CANNOT_UNDERSTAND, "truncated dataset (missing delimiter)")
        group, elem, length = struct.unpack(order + "HHL", raw)
        tag = (group << 16) | elem
        if tag == _SEQ_DELIM:
            return
        if tag != _ITEM or length == _UNDEFINED:
            raise StoreRejected(
                Status.CANNOT_UNDERSTAND, "unparseable dataset (bad pixel data item)"
            )
        if fh.tell() + length > size:
            raise StoreRejected(Status.CANNOT_UNDERSTAND, "truncated dataset (fragment)")
        fh.seek(length, os.SEEK_CUR)

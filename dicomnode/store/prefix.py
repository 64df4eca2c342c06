"""The header of a received file read without pydicom, for the common case only.

Most received files are Part 10 files in an explicit VR little endian transfer syntax whose
header is a flat run of elements with defined lengths. For those, :func:`read_prefix` walks
the element headers from the File Meta Information up to the pixel data (or the end of the
file) in one buffer and takes the values the store needs, about ten times faster than
``dcmread``. Anything else returns ``None`` and the caller reads the file with pydicom:
another transfer syntax, an undefined length, tags out of order, an unknown VR, an element
that runs past what was read, a value the store needs with an unexpected VR, length or
character (non-ASCII, a backslash, an empty value). So every file read here is one pydicom
reads the same way, element for element, and the values are the ones
:mod:`dicomnode.store.inspect` would take from pydicom's data set (a test compares the two on
pydicom's test files and on damaged files).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

from pydicom import config
from pydicom.uid import AllTransferSyntaxes
from pydicom.valuerep import VR

__all__ = ["LONG_VRS", "VRS", "Prefix", "read_prefix"]

#: Bytes read at once: a CT or MR header is 1-4 KB; a longer one falls back to pydicom.
_READ = 64 * 1024
#: The syntaxes pydicom reads as explicit VR little endian (deflate is inflated first: not here).
_SYNTAXES = frozenset(
    str(ts)
    for ts in AllTransferSyntaxes
    if ts.is_little_endian and not ts.is_implicit_VR and not ts.is_deflated
)
#: The VRs pydicom reads in explicit VR data sets, and those with a 4-byte length (PS3.5 7.1.2).
VRS = frozenset(vr.value.encode() for vr in VR if len(vr.value) == 2)
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN"})
LONG_VRS |= {b"UR", b"UT", b"UV"}
_UNDEFINED = 0xFFFFFFFF
_META_START = 132  # after the preamble and "DICM"
_META_HEADER = b"DICM\x02\x00\x00\x00UL\x04\x00"  # "DICM", then (0002,0000) UL, length 4
_TRANSFER_SYNTAX = 0x00020010
_CHARSET = 0x00080005
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_LAST_TAG = 0xFFFE0000  # items and delimiters: not top-level elements of a flat header
#: Text values the store reads (keyword, VR); their VR must be this one.
_TEXTS = {
    0x00080016: ("SOPClassUID", b"UI"),
    0x00080018: ("SOPInstanceUID", b"UI"),
    0x00080060: ("Modality", b"CS"),
    0x0008103E: ("SeriesDescription", b"LO"),
    0x0020000D: ("StudyInstanceUID", b"UI"),
    0x0020000E: ("SeriesInstanceUID", b"UI"),
    0x00280004: ("PhotometricInterpretation", b"CS"),
}
#: Integer values the store reads (keyword, VR).
_INTS = {
    0x00200011: ("SeriesNumber", b"IS"),
    0x00280002: ("SamplesPerPixel", b"US"),
    0x00280008: ("NumberOfFrames", b"IS"),
    0x00280010: ("Rows", b"US"),
    0x00280011: ("Columns", b"US"),
    0x00280100: ("BitsAllocated", b"US"),
}
_WANTED = frozenset({*_TEXTS, *_INTS, _CHARSET})
_UIDS = frozenset({"SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"})
_MAX_VALUE = 1024
#: Printable ASCII but the backslash (a value delimiter), and NUL (padding): every character
#: set pydicom knows decodes these bytes to the same text.
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c != 0x5C) + b"\x00"
_CHARSET_BYTES = _PLAIN + b"\\"
_IS = re.compile(r"-?[0-9]{1,9}")
_SHORT = struct.Struct("<HH2sH")
_LENGTH = struct.Struct("<L")
_US = struct.Struct("<H")


@dataclass(frozen=True)
class Prefix:
    """What the store reads from a file up to its pixel data.

    Attributes
    ----------
    end : int
        Offset of the pixel data element, or the file size when there is none: where pydicom
        stops with ``stop_before_pixels``.
    transfer_syntax_uid : str
        From the File Meta Information.
    texts : dict
        Keyword to value (both ends stripped of spaces and NULs) of the text elements present.
    numbers : dict
        Keyword to value of the integer elements present (``None``: an empty IS value).
    """

    end: int
    transfer_syntax_uid: str
    texts: dict[str, str]
    numbers: dict[str, int | None]


def read_prefix(fh: BinaryIO, size: int) -> Prefix | None:
    """Read the header of the Part 10 file ``fh`` (``size`` bytes) in the common case.

    Returns ``None`` for anything outside it (see the module docstring); ``fh`` is then at an
    unspecified position. Never raises for the file's content.
    """
    if config.settings.reading_validation_mode == config.RAISE:
        return None  # pydicom would also refuse values this reader does not check
    buffer = fh.read(_READ)
    try:
        return _parse(buffer, size)
    except (struct.error, ValueError):  # a cut element header: pydicom speaks for those
        return None


def _parse(buffer: bytes, size: int) -> Prefix | None:
    if buffer[128:140] != _META_HEADER:
        return None
    (group_length,) = _LENGTH.unpack_from(buffer, 140)
    data_start = 144 + group_length
    syntax = _meta_syntax(buffer, data_start)
    if syntax is None:
        return None
    texts: dict[str, str] = {}
    numbers: dict[str, int | None] = {}
    position, last = data_start, 0x0002FFFF
    while position < size:
        element = _element(buffer, position)
        if element is None:
            return None
        tag, vr, length, value_at = element
        if tag <= last or tag >= _LAST_TAG:
            return None
        if tag in _PIXEL_TAGS:
            break
        end = value_at + length
        if length == _UNDEFINED or end > len(buffer):
            return None
        if tag in _WANTED and not _take(tag, vr, buffer[value_at:end], texts, numbers):
            return None
        position, last = end, tag
    if not texts.keys() >= _UIDS:
        return None  # refused later anyway: no need to be fast
    return Prefix(position, syntax, texts, numbers)


def _meta_syntax(buffer: bytes, data_start: int) -> str | None:
    """The Transfer Syntax UID of a File Meta group that ends exactly at ``data_start``."""
    position, last, syntax = 144, 0x00020000, None
    while position < data_start:
        element = _element(buffer, position)
        if element is None:
            return None
        tag, vr, length, value_at = element
        end = value_at + length
        if tag >> 16 != 2 or tag <= last or length == _UNDEFINED or end > data_start:
            return None
        if tag == _TRANSFER_SYNTAX:  # as pydicom takes it: trailing padding removed
            if vr != b"UI":
                return None
            syntax = buffer[value_at:end].rstrip(b"\x00 ").decode("latin-1")
        position, last = end, tag
    return syntax if position == data_start and syntax in _SYNTAXES else None


def _element(buffer: bytes, position: int) -> tuple[int, bytes, int, int] | None:
    """Tag, VR, length and value offset of the element header at ``position``; ``None`` when
    the header is not whole in ``buffer`` or its VR is not one pydicom knows."""
    if position + 8 > len(buffer):
        return None
    group, element, vr, length = _SHORT.unpack_from(buffer, position)
    if vr not in VRS:
        return None
    if vr in LONG_VRS:
        if position + 12 > len(buffer):
            return None
        (length,) = _LENGTH.unpack_from(buffer, position + 8)
        return group << 16 | element, vr, length, position + 12
    return group << 16 | element, vr, length, position + 8


def _take(
    tag: int, vr: bytes, raw: bytes, texts: dict[str, str], numbers: dict[str, int | None]
) -> bool:
    """Record ``raw`` (of a tag in ``_WANTED``); False when it is not plain enough to read here."""
    if tag in _TEXTS:
        keyword, wanted = _TEXTS[tag]
        value = _text(raw) if vr == wanted else None
        if not value:
            return False
        texts[keyword] = value
    elif tag in _INTS:
        keyword, wanted = _INTS[tag]
        if vr != wanted:
            return False
        if vr == b"US":
            if len(raw) != 2:
                return False
            numbers[keyword] = _US.unpack(raw)[0]
            return True
        if len(raw) > _MAX_VALUE or raw.translate(None, _PLAIN):
            return False
        text = raw.decode("ascii").rstrip("\x00 ").lstrip(" ")  # int() in pydicom's IS
        if text and not _IS.fullmatch(text):
            return False
        numbers[keyword] = int(text) if text else None
    elif tag == _CHARSET:  # pydicom decodes it while reading: it must be harmless
        return vr == b"CS" and len(raw) <= _MAX_VALUE and not raw.translate(None, _CHARSET_BYTES)
    return True


def _text(raw: bytes) -> str | None:
    """Plain ASCII without delimiters, stripped of spaces and NULs; else ``None``, also when
    empty (pydicom's empty value depends on its config)."""
    if len(raw) > _MAX_VALUE or raw.translate(None, _PLAIN):
        return None
    return raw.decode("ascii").strip("\x00 ") or None

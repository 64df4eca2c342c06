"""A corpus of malformed C-STORE data sets, generated at test time (no binaries committed).

Each entry is what travels in the P-DATA of one C-STORE: the data set bytes (no file meta: the
receiver builds its own), the command's SOP Class/Instance UIDs and the transfer syntax of the
presentation context. ``success_ok`` marks the few that are odd but valid DICOM (a receiver
may store them); every other entry must get a failure status or an abort.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from io import BytesIO

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from testkit import dicomgen
from testkit.mutate import element, nested_sequence

__all__ = ["Malformed", "corpus"]

_PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010), OW in the generated files
_PIXEL_HEADER = _PIXEL_TAG + b"OB\x00\x00"
_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)
_SEQ_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


@dataclass(frozen=True)
class Malformed:
    """One malformed C-STORE request."""

    name: str
    data: bytes
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str = ExplicitVRLittleEndian
    success_ok: bool = False


def _body(index: int, **attributes: object) -> tuple[bytes, str, str]:
    """A valid 16x16 CT data set (explicit VR little endian, no file meta) and its UIDs."""
    spec = dicomgen.SeriesSpec(
        dicomgen.uid("malformed", "study"), dicomgen.uid("malformed", "series"), 1, rows=16
    )
    ds = dicomgen.instance(spec, index, sop_uid=dicomgen.uid("malformed", index))
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    start = data.index(b"\x08\x00\x16\x00")  # (0008,0016): the first data set element
    return data[start:], str(ds.SOPClassUID), str(ds.SOPInstanceUID)


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data, old
    return data.replace(old, new, 1)


def _truncated() -> list[Malformed]:
    data, cls, inst = _body(0)
    pixels = data.index(_PIXEL_TAG)
    # even cuts: pynetdicom pads an odd-length data set with a NUL, which may complete it
    middle = (pixels // 2) & ~1
    cuts = [2, 6, 8, 12, 60, middle, pixels - 2, pixels + 6, pixels + 100, len(data) - 2]
    return [Malformed(f"truncated-at-{cut}", data[:cut], cls, inst) for cut in cuts]


def _lengths() -> list[Malformed]:
    data, cls, inst = _body(1)
    desc = data.index(b"\x08\x00\x3e\x10LO")  # SeriesDescription
    name = data.index(b"\x10\x00\x10\x00PN")  # PatientName
    uid = data.index(b"\x08\x00\x18\x00UI")  # SOPInstanceUID
    pixels = data.index(_PIXEL_TAG)

    def at(offset: int, value: bytes) -> bytes:
        return data[:offset] + value + data[offset + len(value) :]

    return [
        Malformed("huge-short-length", at(desc + 6, b"\xff\xff"), cls, inst),
        Malformed("undefined-length-text", at(name + 6, b"\xff\xff"), cls, inst),
        Malformed("odd-uid-length", at(uid + 6, b"\x01\x00"), cls, inst),
        Malformed("pixel-length-fffffffe", at(pixels + 8, b"\xfe\xff\xff\xff"), cls, inst),
        Malformed("pixel-length-mismatch", at(pixels + 8, struct.pack("<L", 4096)), cls, inst),
        Malformed("pixel-length-16mb", at(pixels + 8, struct.pack("<L", 1 << 24)), cls, inst),
    ]


def _structure() -> list[Malformed]:
    data, cls, inst = _body(2)
    pixels = data.index(_PIXEL_TAG)
    item = _ITEM + struct.pack("<L", 0xFFFFFFFF)
    meta = element(0x00020010, b"UI", b"\xff\xfejunk\x00") + element(0x00020000, b"UL", b"\x00")
    bad_vr = _replace(data, b"\x08\x00\x60\x00CS", b"\x08\x00\x60\x00\x00\x00")
    seq = element(0x00081140, b"SQ", _ITEM + struct.pack("<L", 20) + b"\xfe\xff\x0d\xe0" * 5)
    return [
        Malformed("item-at-top-level", data[:pixels] + item + data[pixels:], cls, inst),
        Malformed("sequence-delimiter-at-top-level", _SEQ_END + data, cls, inst),
        # a defined-length sequence is parsed only when read: a receiver may store it
        Malformed(
            "item-delimiters-inside-an-item",
            data[:pixels] + seq + data[pixels:],
            cls,
            inst,
            success_ok=True,
        ),
        Malformed("file-meta-inside-the-data-set", meta + data, cls, inst),
        Malformed("zero-vr", bad_vr, cls, inst, success_ok=True),
        Malformed("garbage-after-pixel-data", data + bytes(range(256)) * 4, cls, inst),
        Malformed("implicit-sent-as-explicit", data, cls, inst, ImplicitVRLittleEndian),
    ]


def _uids() -> list[Malformed]:
    data, cls, inst = _body(3)
    hostile, _, _ = _body(4, StudyInstanceUID="1.2.03")
    junk = _replace(data, dicomgen.uid("malformed", "series").encode()[:8], b"\xff\xfe\x80\x81")
    bare = _replace(data, b"\x08\x00\x16\x00UI", b"\x08\x00\x99\x00UI")  # no SOPClassUID
    return [
        Malformed("sop-instance-differs", data, cls, dicomgen.uid("other")),
        Malformed("sop-class-differs", data, "1.2.840.10008.5.1.4.1.1.4", inst),
        Malformed("invalid-study-uid", hostile, cls, dicomgen.uid("malformed", 4)),
        Malformed("non-ascii-series-uid", junk, cls, inst),
        Malformed("no-sop-class-in-data-set", bare, cls, inst),
    ]


def _pixels() -> list[Malformed]:
    huge, cls, inst = _body(5, Rows=65535, Columns=65535, NumberOfFrames=1000)
    data, _, rle_inst = _body(6)
    head = data[: data.index(_PIXEL_TAG)]
    rng = random.Random(7)
    garbage = bytes(rng.getrandbits(8) for _ in range(300))
    table = _ITEM + struct.pack("<L", 0)
    encapsulated = head + _PIXEL_HEADER + b"\xff\xff\xff\xff" + table
    fragment = _ITEM + struct.pack("<L", 64) + b"\x00" * 64
    return [
        Malformed("declared-65535x65535x1000", huge, cls, inst, success_ok=True),
        Malformed("rle-garbage-fragment", encapsulated + garbage, cls, rle_inst, RLELossless),
        Malformed(
            "rle-fragment-past-end",
            encapsulated + _ITEM + struct.pack("<L", 1 << 20) + b"\x00" * 16,
            cls,
            rle_inst,
            RLELossless,
        ),
        Malformed("rle-no-delimiter", encapsulated + fragment, cls, rle_inst, RLELossless),
        Malformed(
            "rle-garbage-payload",
            encapsulated + fragment + _SEQ_END,
            cls,
            rle_inst,
            RLELossless,
            success_ok=True,  # structurally whole: nothing is decoded on receipt
        ),
    ]


def _nesting() -> list[Malformed]:
    data, cls, inst = _body(7)
    at = data.index(b"\x08\x00\x60\x00CS")

    def nested(depth: int, **kwargs: bool) -> bytes:
        return data[:at] + nested_sequence(depth, **kwargs) + data[at:]

    return [
        Malformed("nested-1000-undefined", nested(1000), cls, inst),
        Malformed("nested-1000-unterminated", nested(1000, terminated=False), cls, inst),
        # defined-length sequences are parsed only when read: a receiver may store them
        Malformed("nested-1000-defined", nested(1000, undefined=False), cls, inst, success_ok=True),
    ]


def corpus() -> list[Malformed]:
    """Every malformed request, in a fixed order (names are unique)."""
    rng = random.Random(1)
    _, cls, inst = _body(8)
    simple = [
        Malformed("empty", b"", cls, inst),
        Malformed("garbage", bytes(rng.getrandbits(8) for _ in range(1024)), cls, inst),
        Malformed("zeros", b"\x00" * 4096, cls, inst),
    ]
    entries = simple + _truncated() + _lengths() + _structure() + _uids() + _pixels()
    entries += _nesting()
    assert len({entry.name for entry in entries}) == len(entries)
    return entries

"""Malformed DICOM bytes for fuzzing: valid seed files and hypothesis strategies that break them.

A case starts from one of a few valid Part 10 files (explicit/implicit little endian, explicit
big endian, RLE-encapsulated, nested sequences of defined and undefined length) and applies:

1. in-place damage at real element positions: a length overwritten with a huge, odd or
   off-by-one value, a corrupted VR, a defined length turned undefined;
2. a deeply nested sequence (up to 1500 levels, terminated or not) inserted at an element
   boundary;
3. a replaced file meta group (bad group length, missing/odd/hostile transfer syntax UID,
   missing preamble or ``DICM``);
4. blind damage anywhere: bit flips, inserted or deleted bytes, truncation.

The strategies are shared by ``tests/fuzz`` (bounded, in CI) and ``bench/fuzz.py`` (long runs).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from io import BytesIO

from hypothesis import strategies as st
from pydicom import Dataset, dcmread
from pydicom.dataelem import RawDataElement
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, RLELossless

from testkit import dicomgen

__all__ = [
    "HOSTILE_UIDS",
    "Case",
    "Seed",
    "element",
    "file_meta",
    "nested_sequence",
    "routing_cases",
    "seeds",
    "store_cases",
]

HOSTILE_UIDS = ["", "..", "../../x", "1.2.03", "1..2", "a.b", "1." + "2" * 70, "1.2\x00", "１.２"]
#: Lengths that break parsers: zero, odd, just past the end, sign bit, undefined, huge.
BAD_LENGTHS = [0, 1, 3, 0x7FFF, 0xFFFF, 0x10001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
SHORT_VRS = [b"AE", b"AS", b"CS", b"DA", b"DS", b"FD", b"FL", b"IS", b"LO", b"PN", b"SH"]
SHORT_VRS += [b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US", b"AT", b"ZZ", b"\x00\x00"]
BAD_VRS = [b"\x00\x00", b"ZZ", b"ob", b"SQ", b"UN", b"OB", b"UT", b"AT", b"\xff\xfe", b"  "]
BAD_TRANSFER_SYNTAXES = [
    b"",
    b"1.2.840.10008.1.2.1",  # explicit VR little endian (possibly not what the data is)
    b"1.2.840.10008.1.2",
    b"1.2.840.10008.1.2.2",
    b"1.2.840.10008.1.2.5",  # RLE
    b"1.2.840.10008.1.2.4.50",  # JPEG baseline
    b"1.2.840.10008.1.2.1.99",  # deflated
    b"1.2.3.4.5",  # unknown
    b"\xff\xfe\x00junk",
    b"1" * 300,
]
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT"}
_LONG_VRS |= {b"UV"}


@dataclass(frozen=True)
class Slot:
    """Where one element's header lies in a seed file."""

    vr_at: int | None  # None for implicit VR
    length_at: int
    length_size: int  # 2 or 4
    start: int  # offset of the tag
    length: int = 0  # the declared (true) length of the value that follows

    @property
    def value_at(self) -> int:
        return self.length_at + self.length_size


@dataclass(frozen=True)
class Seed:
    """A valid Part 10 file and the positions of its top-level data elements."""

    name: str
    data: bytes
    sop_class_uid: str
    sop_instance_uid: str
    meta_end: int
    little: bool
    slots: tuple[Slot, ...]


@dataclass(frozen=True)
class Case:
    """A fuzz input: file bytes, the C-STORE command's UIDs, and what was done to the seed."""

    data: bytes
    sop_class_uid: str
    sop_instance_uid: str
    steps: tuple[str, ...]

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return (
            f"Case(steps={self.steps!r}, sop_class_uid={self.sop_class_uid!r}, "
            f"sop_instance_uid={self.sop_instance_uid!r}, data={self.data!r})"
        )


def element(tag: int, vr: bytes, value: bytes, *, length: int | None = None) -> bytes:
    """One explicit VR little endian element, with ``length`` declared instead of the true one."""
    declared = len(value) if length is None else length
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr in _LONG_VRS:
        return head + b"\x00\x00" + struct.pack("<L", declared) + value
    return head + struct.pack("<H", declared & 0xFFFF) + value


def _pad(value: bytes) -> bytes:
    return value + b"\x00" if len(value) % 2 else value


def file_meta(
    transfer_syntax: bytes,
    sop_class: bytes,
    sop_instance: bytes,
    *,
    group_length: int | None = None,
    preamble: bool = True,
) -> bytes:
    """A file meta group built by hand (so that any value, valid or not, can be written)."""
    body = b"".join(
        (
            element(0x00020001, b"OB", b"\x00\x01"),
            element(0x00020002, b"UI", _pad(sop_class)),
            element(0x00020003, b"UI", _pad(sop_instance)),
            element(0x00020010, b"UI", _pad(transfer_syntax)),
            element(0x00020012, b"UI", b"1.2.3.4\x00"),
        )
    )
    length = len(body) if group_length is None else group_length
    group = element(0x00020000, b"UL", struct.pack("<L", length & 0xFFFFFFFF))
    return (b"\x00" * 128 + b"DICM" if preamble else b"") + group + body


def nested_sequence(depth: int, *, undefined: bool = True, terminated: bool = True) -> bytes:
    """(0008,1115) nested ``depth`` levels deep, each level one item holding the next."""
    inner = element(0x00200013, b"IS", b"1 ")
    for _ in range(depth):
        if undefined:
            item = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
            if terminated:
                item += struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
            seq = item + (struct.pack("<HHL", 0xFFFE, 0xE0DD, 0) if terminated else b"")
            inner = element(0x00081115, b"SQ", seq, length=0xFFFFFFFF)
        else:
            item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
            inner = element(0x00081115, b"SQ", item)
    return inner


def _with_sequences(ds: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    inner = Dataset()
    inner.CodeValue = "T-D0050"
    inner.CodingSchemeDesignator = "SRT"
    inner.CodeMeaning = "Tissue"
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    ds["ReferencedImageSequence"].is_undefined_length = True
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    return ds


def _encode(name: str, ds: Dataset, *, little: bool = True, implicit: bool = False) -> Seed:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True, little_endian=little, implicit_vr=implicit)
    data = buffer.getvalue()
    parsed = dcmread(BytesIO(data), defer_size=None)
    slots = []
    for elem in parsed._dict.values():
        if not isinstance(elem, RawDataElement):  # sequences are parsed at once
            continue
        tell = elem.value_tell
        if implicit:
            slots.append(Slot(None, tell - 4, 4, tell - 8, elem.length))
        elif elem.VR is not None and elem.VR.encode() in _LONG_VRS:
            slots.append(Slot(tell - 8, tell - 4, 4, tell - 12, elem.length))
        else:
            slots.append(Slot(tell - 4, tell - 2, 2, tell - 8, elem.length))
    meta_end = min(slot.start for slot in slots)
    return Seed(
        name, data, str(ds.SOPClassUID), str(ds.SOPInstanceUID), meta_end, little, tuple(slots)
    )


@cache
def seeds() -> tuple[Seed, ...]:
    """The valid files every case starts from (small: 8x8 pixels)."""
    spec = dicomgen.SeriesSpec(
        dicomgen.uid("fuzz", "study"), dicomgen.uid("fuzz", "series"), 5, rows=8, columns=8
    )
    implicit = dicomgen.instance(spec, 1)
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    big = dicomgen.instance(spec, 2)
    big.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    rle = dicomgen.instance(spec, 3)
    rle.compress(RLELossless)
    return (
        _encode("explicit", dicomgen.instance(spec, 0)),
        _encode("implicit", implicit, implicit=True),
        _encode("big-endian", big, little=False),
        _encode("rle", rle),
        _encode("sequences", _with_sequences(dicomgen.instance(spec, 4))),
    )


@st.composite
def _in_place(draw: st.DrawFn, seed: Seed, data: bytearray) -> str:
    """Damage one element's length or VR without moving any byte."""
    slot = draw(st.sampled_from(seed.slots))
    kind = draw(st.sampled_from(["length", "vr", "undefined"]))
    order = "<" if seed.little else ">"
    if kind == "vr" and slot.vr_at is not None:
        vr = draw(st.sampled_from(BAD_VRS))
        data[slot.vr_at : slot.vr_at + 2] = vr
        return f"vr@{slot.start}={vr!r}"
    value = 0xFFFFFFFF if kind == "undefined" else draw(st.sampled_from(BAD_LENGTHS))
    if slot.length_size == 2:
        value &= 0xFFFF
        data[slot.length_at : slot.length_at + 2] = struct.pack(order + "H", value)
    else:
        data[slot.length_at : slot.length_at + 4] = struct.pack(order + "L", value)
    return f"length@{slot.start}={value:#x}"


@st.composite
def _blind(draw: st.DrawFn, data: bytearray) -> str:
    """Damage anywhere: flip, insert, delete or truncate."""
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
    at = draw(st.integers(0, max(len(data) - 1, 0)))
    if kind == "flip" and data:
        data[at] ^= draw(st.integers(1, 255))
    elif kind == "insert":
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    elif kind == "delete":
        del data[at : at + draw(st.integers(1, 64))]
    else:
        del data[at:]
    return f"{kind}@{at}"


@st.composite
def store_cases(draw: st.DrawFn) -> Case:
    """A seed file damaged in one to five ways, with the command UIDs a sender might give."""
    seed = draw(st.sampled_from(seeds()))
    data = bytearray(seed.data)
    steps = [seed.name]
    for _ in range(draw(st.integers(0, 2))):
        steps.append(draw(_in_place(seed, data)))
    if draw(st.integers(0, 3)) == 0:
        slot = draw(st.sampled_from(seed.slots))
        depth = draw(st.sampled_from([1, 2, 16, 200, 1000, 1500]))
        undefined, terminated = draw(st.booleans()), draw(st.booleans())
        data[slot.start : slot.start] = nested_sequence(
            depth, undefined=undefined, terminated=terminated
        )
        steps.append(f"nest@{slot.start}x{depth}{'u' if undefined else 'd'}{terminated:d}")
    if draw(st.integers(0, 3)) == 0:
        ts = draw(st.sampled_from(BAD_TRANSFER_SYNTAXES))
        group_length = draw(st.sampled_from([None, 0, 3, 0xFFFFFFFF]))
        preamble = draw(st.booleans())
        meta = file_meta(
            ts,
            seed.sop_class_uid.encode(),
            seed.sop_instance_uid.encode(),
            group_length=group_length,
            preamble=preamble,
        )
        data[: seed.meta_end] = meta
        steps.append(f"meta ts={ts[:24]!r} gl={group_length} preamble={preamble}")
    for _ in range(draw(st.integers(0, 2))):
        steps.append(draw(_blind(data)))
    uids = st.sampled_from([seed.sop_instance_uid] * 4 + HOSTILE_UIDS)
    classes = st.sampled_from([seed.sop_class_uid] * 4 + ["1.2.840.10008.5.1.4.1.1.4", ""])
    return Case(bytes(data), draw(classes), draw(uids), tuple(steps))


_VALUES = st.one_of(
    st.binary(max_size=16),
    st.sampled_from([b"1e400", b"inf", b"nan", b"-0", b"1" * 16, b"\\\\", b"\x1b$B", b"\xff\xfe"]),
)


@st.composite
def _value_damage(draw: st.DrawFn, seed: Seed, data: bytearray) -> str:
    """Overwrite one element's value (same length) or swap its VR for another short VR."""
    slot = draw(st.sampled_from([s for s in seed.slots if 0 < s.length <= 64]))
    if slot.vr_at is not None and slot.length_size == 2 and draw(st.booleans()):
        vr = draw(st.sampled_from(SHORT_VRS))
        data[slot.vr_at : slot.vr_at + 2] = vr
        return f"vr@{slot.start}={vr!r}"
    value = draw(_VALUES).ljust(slot.length, b" ")[: slot.length]
    data[slot.value_at : slot.value_at + slot.length] = value
    return f"value@{slot.start}={value!r}"


@st.composite
def routing_cases(draw: st.DrawFn) -> Case:
    """A seed whose structure stays whole but whose values (and VRs) are damaged.

    Most such files are accepted by the store, so what routing later reads from the stored
    file is exercised, not just the store's refusals.
    """
    seed = draw(st.sampled_from(seeds()))
    data = bytearray(seed.data)
    steps = [seed.name]
    for _ in range(draw(st.integers(1, 4))):
        steps.append(draw(_value_damage(seed, data)))
    return Case(bytes(data), seed.sop_class_uid, seed.sop_instance_uid, tuple(steps))

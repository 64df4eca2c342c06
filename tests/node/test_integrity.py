"""Integrity at ingest, over the wire: broken pixel data, UID conflicts, mislabelled encodings.

Each case checks the C-STORE status and the bytes on disk: a refused instance leaves nothing,
and a good copy is never replaced by a broken one. The cases share one node; each sends its own
study and checks what the node gained meanwhile (``shared_node``, :class:`testkit.since.Since`).
"""

from __future__ import annotations

import copy
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from testkit import dicomgen
from testkit.scu import send_raw, write_as_is
from testkit.since import Since

REFUSED = 0xC000
CONFLICT = 0xA900


def _spec(name: str, **kwargs: object) -> dicomgen.SeriesSpec:
    return dicomgen.study(name, [1], **kwargs)[0]


def _file(tmp_path: Path, name: str, **changes: object) -> Path:
    ds = dicomgen.instance(_spec(name), 0)
    for key, value in changes.items():
        setattr(ds, key, value)
    return write_as_is(ds, tmp_path / f"{name}.dcm")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _alerts(node: Since) -> list[tuple[str, str]]:
    return node.rows("audit_events", "peer, detail", "kind = 'security.alert'")


def _superseded(node: Since) -> int:
    return node.count("audit_events", "kind = 'instance.superseded'")


@pytest.mark.parametrize(
    ("name", "pixel_bytes", "status"),
    [
        ("short", 32 * 32 * 2 - 100, REFUSED),
        ("long", 32 * 32 * 2 + 64, REFUSED),
        ("exact", 32 * 32 * 2, 0x0000),
    ],
)
def test_native_pixel_data_must_match_the_header(shared_node, tmp_path, name, pixel_bytes, status):
    node = Since(shared_node)
    path = _file(tmp_path, name, PixelData=bytes(pixel_bytes))
    assert send_raw(node.port, [path]) == [status]
    assert len(node.stored_files()) == (1 if status == 0 else 0)
    assert node.count("instances") == (1 if status == 0 else 0)


def test_odd_length_pixel_data_may_carry_its_pad_byte(shared_node, tmp_path):
    node = Since(shared_node)
    ds = dicomgen.instance(_spec("odd"), 0)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 3, 3, 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(10)  # 9 bytes of pixels, padded to an even length
    assert send_raw(node.port, [write_as_is(ds, tmp_path / "odd.dcm")]) == [0]


def test_a_broken_resend_never_replaces_a_good_copy(shared_node, tmp_path):
    node = Since(shared_node)
    good = _file(tmp_path, "resend")
    assert send_raw(node.port, [good]) == [0]
    (stored,) = node.stored_files()
    before = _sha(stored)
    broken = _file(tmp_path, "resend", PixelData=bytes(100))
    broken = broken.rename(tmp_path / "broken.dcm")
    assert send_raw(node.port, [broken]) == [REFUSED]
    assert node.stored_files() == [stored] and _sha(stored) == before
    assert _superseded(node) == 0


def test_same_sop_instance_under_another_series_is_refused(shared_node, tmp_path):
    node = Since(shared_node)
    first = dicomgen.instance(_spec("conflict-a"), 0, sop_uid="2.25.4242")
    second = dicomgen.instance(_spec("conflict-b"), 0, sop_uid="2.25.4242")
    paths = [write_as_is(first, tmp_path / "a.dcm"), write_as_is(second, tmp_path / "b.dcm")]
    assert send_raw(node.port, paths, ae_title="SPOOFER") == [0, CONFLICT]
    (stored,) = node.stored_files()
    assert stored.parent.name == first.SeriesInstanceUID
    assert _sha(stored) == _sha(paths[0]) or dcmread(stored).SeriesInstanceUID == (
        first.SeriesInstanceUID
    )
    ((peer, detail),) = _alerts(node)
    assert peer == "SPOOFER@127.0.0.1"
    assert detail.startswith("refused: SOP Instance UID already stored in study")
    assert second.SeriesInstanceUID in detail


def test_same_series_under_another_study_is_refused(shared_node, tmp_path):
    node = Since(shared_node)
    spec = _spec("moved")
    first = dicomgen.instance(spec, 0)
    second = dicomgen.instance(spec, 1)
    second.StudyInstanceUID = dicomgen.uid("another", "study")
    paths = [write_as_is(first, tmp_path / "1.dcm"), write_as_is(second, tmp_path / "2.dcm")]
    assert send_raw(node.port, paths) == [0, CONFLICT]
    assert len(node.stored_files()) == 1
    assert node.count("studies") == 1
    ((_, detail),) = _alerts(node)
    assert f"Series Instance UID {spec.series_uid} already stored in study" in detail


def _relabelled(ds, path: Path, *, encoded_as: str, labelled_as: str) -> Path:
    """``ds`` encoded in ``encoded_as``, with file meta that says ``labelled_as``."""
    ds.file_meta.TransferSyntaxUID = encoded_as
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    raw = buffer.getvalue()
    meta_end = 144 + int.from_bytes(raw[140:144], "little")
    meta_only = ds.copy()
    del meta_only.PixelData  # pydicom refuses native pixels under a compressed syntax
    meta_only.file_meta.TransferSyntaxUID = labelled_as
    header = io.BytesIO()
    meta_only.save_as(header, enforce_file_format=True)
    new_meta_end = 144 + int.from_bytes(header.getvalue()[140:144], "little")
    path.write_bytes(header.getvalue()[:new_meta_end] + raw[meta_end:])
    return path


def test_implicit_bytes_on_an_explicit_context_are_refused(shared_node, tmp_path):
    node = Since(shared_node)
    ds = dicomgen.instance(_spec("implicit"), 0)
    path = _relabelled(
        ds,
        tmp_path / "implicit.dcm",
        encoded_as=ImplicitVRLittleEndian,
        labelled_as=ExplicitVRLittleEndian,
    )
    assert send_raw(node.port, [path]) == [REFUSED]
    assert node.stored_files() == []
    assert "implicit VR data set on an explicit VR transfer syntax" in node.log_text()


def test_native_pixels_on_a_jpeg_context_are_refused(shared_node, tmp_path):
    node = Since(shared_node)
    ds = dicomgen.instance(_spec("jpeg"), 0)
    path = _relabelled(
        ds, tmp_path / "jpeg.dcm", encoded_as=ExplicitVRLittleEndian, labelled_as=JPEGBaseline8Bit
    )
    assert send_raw(node.port, [path], syntaxes=(JPEGBaseline8Bit,)) == [REFUSED]
    assert node.stored_files() == []
    log = node.log_text()
    assert "native pixel data on a compressed transfer syntax" in log


def _compressed(ds, path: Path, syntax: str) -> Path:
    ds = copy.deepcopy(ds)  # Dataset.copy() shares the element dict and the file meta
    ds.compress(syntax, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless], ids=["rle", "jpeg-ls"])
def test_a_lossless_resend_is_a_duplicate_and_a_changed_one_supersedes(
    shared_node, tmp_path, syntax
):
    node = Since(shared_node)
    ds = dicomgen.instance(_spec(f"lossless-{syntax}"), 0, value=7)
    ds.PixelRepresentation, ds.PixelData = 0, np.arange(32 * 32, dtype=np.uint16).tobytes()
    native = write_as_is(ds, tmp_path / "native.dcm")
    assert send_raw(node.port, [native]) == [0]
    (stored,) = node.stored_files()
    before = _sha(stored)
    same = _compressed(ds, tmp_path / "same.dcm", syntax)
    assert _sha(same) != _sha(native)
    assert send_raw(node.port, [same], syntaxes=(syntax,)) == [0]
    # the same image in another lossless syntax: a duplicate, the stored copy untouched
    assert node.stored_files() == [stored] and _sha(stored) == before
    assert _superseded(node) == 0
    changed = copy.deepcopy(ds)
    pixels = np.arange(32 * 32, dtype=np.uint16)
    pixels[5] += 1
    changed.PixelData = pixels.tobytes()
    changed_path = _compressed(changed, tmp_path / "changed.dcm", syntax)
    assert send_raw(node.port, [changed_path], syntaxes=(syntax,)) == [0]
    assert _superseded(node) == 1
    assert dcmread(node.stored_files()[0]).file_meta.TransferSyntaxUID == syntax

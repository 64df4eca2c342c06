"""Hostile and broken input over the wire: a failure status, nothing stored, node alive.

The cases on the defaults share one node (``shared_node``); each checks what the node stored,
recorded and logged while it ran (:class:`testkit.since.Since`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage  # type: ignore[attr-defined]

from dicomnode.net.peer import no_delay
from testkit import dicomgen
from testkit.nodeproc import NodeProcess, echo
from testkit.scu import lenient_pydicom, write_as_is
from testkit.since import Since

HOSTILE_UIDS = [
    "",
    "..",
    "../",
    "../../../../tmp/PWNED_MARKER",
    "1.2.3/../../PWNED_MARKER",
    "/etc/passwd",
    "1.2.3/4",
    "1.2.3\\4",
    "C:\\PWNED_MARKER",
    "1." + "2" * 70,
    "1." + ".".join(["9"] * 40),
    "1.2.03",
    "1..2",
    ".1.2",
    "1.2.",
    "a.b.c",
    "1.2.3a",
    "1.2.3 4",
    "1.2.3\n4",
    "%2e%2e%2fPWNED_MARKER",
    "~root",
    "${jndi:ldap://x}",
    "1.2.3;rm -rf",
    "１.２.３",
    "-1.2",
]


def _send_files(port: int, paths: list[Path]) -> list[int | None]:
    """Send raw files in one association; the status of each (None: no response)."""
    ae = AE(ae_title="HOSTILE")
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    ae.add_requested_context(MRImageStorage, [ExplicitVRLittleEndian])
    ae.dimse_timeout = 5
    statuses: list[int | None] = []
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
    assert assoc.is_established
    no_delay(assoc)  # PITFALLS: Nagle holds each request after the first for ~45 ms
    for path in paths:
        if not assoc.is_established:
            assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
            no_delay(assoc)
        try:
            status = assoc.send_c_store(path)
        except (ValueError, AttributeError, RuntimeError, TypeError):
            statuses.append(None)
            continue
        statuses.append(int(status.Status) if status else None)
    if assoc.is_established:
        assoc.release()
    return statuses


@pytest.fixture
def node(shared_node: NodeProcess) -> Since:
    """The module's node, as one case sees it: what it gains from now on."""
    return Since(shared_node)


def _write_hostile(spec, n: int, attr: str, bad: str, path: Path) -> Path:
    """Instance ``n`` with ``attr`` (and, for the SOP UID, the command's) set to ``bad``.

    Values pydicom cannot encode (non-ASCII) are written as a placeholder of the same byte
    length, then patched in the file's bytes.
    """
    raw = bad.encode("utf-8")
    placeholder = "9" * len(raw) if raw and not bad.isascii() else bad
    ds = dicomgen.instance(spec, n)
    setattr(ds, attr, placeholder)
    if attr == "SOPInstanceUID":
        ds.file_meta.MediaStorageSOPInstanceUID = placeholder
    write_as_is(ds, path)
    if placeholder != bad:
        path.write_bytes(path.read_bytes().replace(placeholder.encode(), raw))
    return path


def test_hostile_uids_are_refused_and_nothing_leaves_the_store(node, tmp_path):
    spec = dicomgen.study("hostile", [1])[0]
    paths = []
    with lenient_pydicom():
        for n, bad in enumerate(HOSTILE_UIDS):
            for attr in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
                paths.append(_write_hostile(spec, n, attr, bad, tmp_path / f"h{n}-{attr}.dcm"))
        statuses = _send_files(node.port, paths)
    assert len(statuses) == len(HOSTILE_UIDS) * 3
    accepted = [p.name for p, s in zip(paths, statuses, strict=True) if s == 0]
    assert accepted == []
    assert all(s is None or s >= 0xA000 for s in statuses)
    assert node.stored_files() == []
    assert node.count("instances") == 0
    assert not list(Path("/tmp").glob("PWNED_MARKER*"))
    assert not [p for p in node.root.parent.rglob("*PWNED_MARKER*")]
    # Some hostile commands make pynetdicom's decoder fail after it created its spool file;
    # the node reaps such files within seconds.
    deadline = time.monotonic() + 15
    while list((node.store / ".incoming").iterdir()):
        assert time.monotonic() < deadline, "spool files left behind"
        time.sleep(0.5)
    assert echo(node.port)


def test_dataset_uids_must_equal_the_command(node, tmp_path):
    spec = dicomgen.study("mismatch", [1])[0]
    ds = dicomgen.instance(spec, 0)
    ds.file_meta.MediaStorageSOPInstanceUID = dicomgen.uid("other instance")
    other_class = dicomgen.instance(spec, 1)
    other_class.file_meta.MediaStorageSOPClassUID = MRImageStorage
    with lenient_pydicom():
        statuses = _send_files(
            node.port,
            [write_as_is(ds, tmp_path / "a.dcm"), write_as_is(other_class, tmp_path / "b.dcm")],
        )
    assert statuses == [0xA900, 0xA900]
    assert node.stored_files() == []


def test_truncated_and_unparseable_files_get_a_failure_and_the_node_serves_on(node, tmp_path):
    spec = dicomgen.study("broken", [1])[0]
    good = write_as_is(dicomgen.instance(spec, 0), tmp_path / "good.dcm")
    data = good.read_bytes()
    truncated_pixels = tmp_path / "trunc-pixels.dcm"
    truncated_pixels.write_bytes(data[:-300])
    meta_end = data.index(b"\x08\x00\x16\x00")  # (0008,0016) SOPClassUID: first data element
    truncated_header = tmp_path / "trunc-header.dcm"
    truncated_header.write_bytes(data[: meta_end + 40])
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(data[:meta_end] + bytes(range(256)) * 8)
    with lenient_pydicom():
        statuses = _send_files(node.port, [truncated_pixels, truncated_header, garbage, good])
    assert statuses[:3] == [0xC000, 0xC000, 0xC000]
    assert statuses[3] == 0
    assert len(node.stored_files()) == 1
    assert not list((node.store / ".incoming").iterdir())
    assert echo(node.port)
    audit = node.rows("audit_events", "detail", "kind = 'store.failed'")
    assert len(audit) == 3 and all(d.startswith("0xC000") for (d,) in audit)


def test_declared_huge_native_image_is_refused_without_decoding(node, tmp_path):
    # Native pixel data must be as long as the header declares (issue 11: integrity at
    # ingest); a compressed bomb is stored and refused by the pipelines' decode budget.
    spec = dicomgen.study("huge", [1])[0]
    ds = dicomgen.instance(spec, 0)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 1000  # declares ~8.6 TB of pixels; carries 2 KB
    path = write_as_is(ds, tmp_path / "huge.dcm")
    with lenient_pydicom():
        statuses = _send_files(node.port, [path])
    assert statuses == [0xC000]
    assert node.stored_files() == []
    assert "pixel data is 2048 bytes, the header declares 8589672450000" in node.log_text()
    assert echo(node.port)


def test_store_below_min_free_answers_a700_and_keeps_nothing(node_factory, tmp_path):
    node = node_factory(storage={"min_free": "1000TB"}).start()
    spec = dicomgen.study("full", [2])[0]
    paths = dicomgen.write_series(spec, tmp_path / "full")
    statuses = _send_files(node.port, paths)
    assert statuses == [0xA700, 0xA700]
    assert node.stored_files() == []
    assert not list((node.store / ".incoming").iterdir())
    assert node.query("select count(*) from instances") == [(0,)]

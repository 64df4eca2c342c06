"""pynetdicom's spool files: the node's go to its store, nobody else's move, the reaper keeps
to its own (in-process SCP, next to a foreign pynetdicom SCP in the same process)."""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicomnode.net.spool import SPOOL_PREFIX, SpoolFile
from testkit import dicomgen
from testkit.inprocess import storage_scp
from testkit.nodeproc import free_port


@pytest.fixture
def scp(tmp_path: Path):
    node = storage_scp(tmp_path)
    before = tempfile.gettempdir()
    node.start()
    assert tempfile.gettempdir() == before  # no process-wide state changed
    yield node
    node.stop()


def _send(port: int, called: str) -> int:
    ae = AE(ae_title="SPOOLER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    (ds,) = dicomgen.series(dicomgen.study("spool", [1])[0])
    status = int(assoc.send_c_store(ds).Status)
    assoc.release()
    return status


def test_node_spools_into_its_store_and_leaves_tempfile_and_other_aes_alone(scp, monkeypatch):
    seen: list[Path] = []
    ingest = scp.store.ingest

    def recording(spool: Path, **kwargs):
        seen.append(spool)
        return ingest(spool, **kwargs)

    monkeypatch.setattr(scp.store, "ingest", recording)
    assert _send(scp.port, "DICOMNODE") == 0x0000
    (spool,) = seen
    assert spool.parent == scp.store.incoming and spool.name.startswith(SPOOL_PREFIX)

    foreign: list[Path] = []

    def handle(event):
        foreign.append(Path(event.dataset_path))
        return 0x0000

    other = AE(ae_title="OTHER")
    other.add_supported_context(CTImageStorage)
    port = free_port()
    server = other.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle)]
    )
    try:
        assert _send(port, "OTHER") == 0x0000
    finally:
        server.shutdown()
    (path,) = foreign
    assert path.parent == Path(tempfile.gettempdir())
    assert not path.name.startswith(SPOOL_PREFIX)


def test_reaper_removes_only_stale_spool_files_of_pynetdicom(scp):
    incoming = scp.store.incoming
    old = time.time() - 60
    names = ["scp-stale.dcm", "scp-fresh.dcm", "recover-1.2.3.dcm", "notes.txt"]
    for name in names:
        (incoming / name).write_bytes(b"x")
    (incoming / "dicomnode-job1-abc").mkdir()
    for name in [*names[:1], *names[2:], "dicomnode-job1-abc"]:
        os.utime(incoming / name, (old, old))
    assert scp.reap_spool(min_age=5) == 1
    assert sorted(p.name for p in incoming.iterdir()) == sorted(
        ["scp-fresh.dcm", "recover-1.2.3.dcm", "notes.txt", "dicomnode-job1-abc"]
    )


def test_spool_file_is_new_private_and_takes_every_byte(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        first = SpoolFile.create(tmp_path, SPOOL_PREFIX, ".dcm")
        second = SpoolFile.create(tmp_path, SPOOL_PREFIX, ".dcm")
    finally:
        os.umask(old_umask)
    names = [Path(first.name).name, Path(second.name).name]
    assert names[0] != names[1]
    assert all(n.startswith(SPOOL_PREFIX) and n.endswith(".dcm") for n in names)
    assert stat.S_IMODE(os.stat(first.name).st_mode) == 0o600
    payload = bytes(range(256)) * 4096  # 1 MiB, in one write as pynetdicom does with a PDV
    assert first.write(b"\x00" * 128) + first.write(memoryview(payload)) == 128 + len(payload)
    first.file.flush()  # what pynetdicom calls after each write
    first.close()
    second.close()
    assert Path(first.name).read_bytes() == b"\x00" * 128 + payload
    assert first.closed

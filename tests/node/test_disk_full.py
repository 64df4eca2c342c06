"""Disk full, for real: the store on a small tmpfs fills up while a series arrives."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from testkit import dicomgen


@pytest.fixture
def tmpfs(tmp_path):
    mount = tmp_path / "fs"
    mount.mkdir()
    # needs root (CI runs as root): a real filesystem that fills, not a patched free-space call
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _send(port: int, datasets) -> list[int]:
    ae = AE(ae_title="FILLER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
    assert assoc.is_established
    statuses = [int(assoc.send_c_store(ds).Status) for ds in datasets]
    assoc.release()
    return statuses


def test_store_fills_every_success_is_kept_the_rest_get_a700_then_resumes(node_factory, tmpfs):
    filler = tmpfs / "filler.bin"
    filler.write_bytes(b"\0" * 3_000_000)
    node = node_factory(storage={"path": str(tmpfs / "store"), "min_free": "2MB"}).start()
    spec = dicomgen.SeriesSpec(
        dicomgen.uid("full", "study"), dicomgen.uid("full", "series"), 90, rows=256, columns=256
    )
    datasets = list(dicomgen.series(spec))  # 90 x 131 kB = 11.8 MB: does not fit
    statuses = _send(node.port, datasets)
    ok = [ds for ds, s in zip(datasets, statuses, strict=True) if s == 0]
    refused = [ds for ds, s in zip(datasets, statuses, strict=True) if s != 0]
    assert ok and refused
    assert set(statuses) == {0x0000, 0xA700}
    assert statuses == sorted(statuses)  # once full, every later one is refused
    rows = dict(node.query("select sop_instance_uid, path from instances"))
    assert set(rows) == {ds.SOPInstanceUID for ds in ok}
    store = Path(tmpfs / "store")
    on_disk = {
        p.relative_to(store).as_posix()
        for p in store.rglob("*.dcm")
        if not p.relative_to(store).parts[0].startswith(".")
    }
    assert on_disk == set(rows.values())
    assert list((store / ".incoming").iterdir()) == []
    # space is freed: the refused instances are stored now
    filler.unlink()
    statuses = _send(node.port, refused[:20])
    assert statuses == [0] * 20
    assert node.query("select count(*) from instances") == [(len(ok) + 20,)]


def test_dataset_larger_than_the_free_space_fails_in_the_spool_and_nothing_is_kept(
    node_factory, tmpfs
):
    """ENOSPC while pynetdicom spools the dataset: the sender never sees Success, no partial file
    stays (the spool reaper removes the half-written file), and storing goes on afterwards."""
    node = node_factory(storage={"path": str(tmpfs / "store"), "min_free": "1MB"}).start()
    big = dicomgen.SeriesSpec(
        dicomgen.uid("huge", "study"), dicomgen.uid("huge", "series"), 1, rows=2600, columns=2600
    )
    (dataset,) = dicomgen.series(big)  # 13.5 MB of pixels on a 12 MB filesystem
    ae = AE(ae_title="HUGE")
    ae.add_requested_context(CTImageStorage)
    ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")
    assert assoc.is_established
    response = assoc.send_c_store(dataset)
    status = int(response.Status) if "Status" in response else None
    assert status != 0x0000
    if assoc.is_established:
        assoc.release()
    assert node.query("select count(*) from instances") == [(0,)]
    incoming = Path(tmpfs / "store" / ".incoming")
    deadline = time.monotonic() + 20
    while list(incoming.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(incoming.iterdir()) == []
    small = dicomgen.study("after-enospc", [3])[0]
    assert _send(node.port, list(dicomgen.series(small))) == [0, 0, 0]
    assert node.proc is not None and node.proc.poll() is None

"""Real peers (dcmtk echoscu/storescu and a pynetdicom SCU) against a node subprocess.

The cases that only negotiate share one node on the defaults (``shared_node``).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicomnode.net.peer import no_delay
from testkit import dicomgen
from testkit.nodeproc import DCMTK_ENV, ECHOSCU, echo, storescu, wait_for


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_echoscu_gets_success(shared_node):
    node = shared_node
    out = subprocess.run(
        [ECHOSCU, "-aec", "DICOMNODE", "127.0.0.1", str(node.port)],
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr


def test_study_over_several_associations_resent_twice_is_stored_once(node_factory, tmp_path):
    node = node_factory().start()
    specs = dicomgen.study("multi", [7, 5, 9])
    dirs = [tmp_path / f"s{n}" for n in range(len(specs))]
    files = [dicomgen.write_series(spec, d) for spec, d in zip(specs, dirs, strict=True)]
    # dcmtk: one association per series, the third series split in two associations.
    for batch in (files[0], files[1], files[2][:4], files[2][4:]):
        result = storescu(node.port, batch)
        assert result.returncode == 0, result.stderr
    # pynetdicom SCU re-sends everything, twice, in one association each time.
    all_files = [p for group in files for p in group]
    for _ in range(2):
        ae = AE(ae_title="PYSCU")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")
        assert assoc.is_established
        no_delay(assoc)  # PITFALLS: Nagle holds each request after the first for ~45 ms
        for path in all_files:
            status = assoc.send_c_store(dcmread(path))
            assert status.Status == 0x0000
        assoc.release()
    # storescu re-sends once more: identical bytes → Success, no new instance.
    assert storescu(node.port, all_files).returncode == 0

    rows = node.query("select sop_instance_uid, path, sha256 from instances")
    on_disk = node.stored_files()
    assert len(rows) == len(all_files) == len(on_disk)
    assert {r[0] for r in rows} == {dcmread(p).SOPInstanceUID for p in all_files}
    for _sop, rel, sha in rows:
        stored = node.store / rel
        assert stored.is_file() and _sha(stored) == sha
        assert stored.read_bytes()[:128] == b"\x00" * 128
        assert stored.read_bytes()[128:132] == b"DICM"
    series_counts = node.query(
        "select s.series_uid, count(i.id) from series s join instances i on i.series_id = s.id "
        "group by s.id"
    )
    assert sorted(c for _, c in series_counts) == [5, 7, 9]
    status = node.cli("status", "--json")
    assert status.returncode == 0, status.stderr
    import json

    listed = json.loads(status.stdout)
    assert sorted(item["instances"] for item in listed) == [5, 7, 9]
    assert {item["study_uid"] for item in listed} == {specs[0].study_uid}
    audit = node.cli("status", "--audit", "5")
    assert audit.returncode == 0 and "association.accepted" in audit.stdout
    assert not list((node.store / ".incoming").iterdir())
    assert node.query("select count(*) from audit_events where kind='instance.superseded'") == [
        (0,)
    ]


def test_changed_instance_supersedes_and_reopens_series(node_factory, tmp_path):
    node = node_factory().start()
    spec = dicomgen.study("change", [3])[0]
    first = dicomgen.instance(spec, 0)
    changed = dicomgen.instance(spec, 0, value=500)
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")
    assert assoc.send_c_store(first).Status == 0
    assoc.release()
    # Wait for completion, then send the changed version.
    import time

    deadline = time.monotonic() + 15
    while node.query("select state from series") != [("complete",)]:
        assert time.monotonic() < deadline, "series never completed"
        time.sleep(0.2)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")
    assert assoc.send_c_store(changed).Status == 0
    assoc.release()
    assert node.query("select state from series") == [("open",)]
    kinds = [k for (k,) in node.query("select kind from audit_events order by id")]
    assert "instance.superseded" in kinds and "series.reopened" in kinds
    kept = list((node.store / ".superseded").rglob("*.dcm"))
    assert len(kept) == 1
    assert dcmread(kept[0]).pixel_array.max() == 0
    (rel,) = node.query("select path from instances")[0]
    assert dcmread(node.store / rel).pixel_array.max() == 500


def test_unknown_ae_and_wrong_address_are_rejected(node_factory, tmp_path):
    node = node_factory(node={"allow": [{"ae_title": "GOODSCU", "host": "127.0.0.1/32"}]}).start()
    spec = dicomgen.study("acl", [1])[0]
    ds = dicomgen.instance(spec, 0)

    def try_store(ae_title: str, bind: str) -> bool:
        ae = AE(ae_title=ae_title)
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE", bind_address=(bind, 0))
        if not assoc.is_established:
            return False
        ok = assoc.send_c_store(ds).Status == 0
        assoc.release()
        return ok

    assert not try_store("BADSCU", "127.0.0.1")
    assert not try_store("GOODSCU", "127.0.0.2")
    assert node.query("select count(*) from instances") == [(0,)]
    assert try_store("GOODSCU", "127.0.0.1")

    def rejected_peers() -> list[str]:
        rows = node.query("select peer from audit_events where kind='security.alert'")
        return sorted(p for (p,) in rows if not p.startswith("READYCHECK"))

    # Each rejection is audited by its own association's thread (in any SCP process) once the
    # peer has seen it, in either order: wait for both rows, then check there are no others.
    wait_for(lambda: len(rejected_peers()) >= 2, "both rejections audited")
    assert rejected_peers() == ["BADSCU@127.0.0.1", "GOODSCU@127.0.0.2"]
    # dcmtk with an unknown AE is refused too.
    result = storescu(node.port, dicomgen.write_series(spec, tmp_path / "acl"), aet="NOPE")
    assert "Association Rejected" in result.stdout + result.stderr


def test_deflated_transfer_syntax_is_refused_at_negotiation(shared_node):
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    node = shared_node
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage, [DeflatedExplicitVRLittleEndian])
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOMNODE")
    assert assoc.is_established
    accepted = {cx.transfer_syntax[0] for cx in assoc.accepted_contexts}
    rejected = {cx.transfer_syntax[0] for cx in assoc.rejected_contexts}
    assoc.release()
    assert accepted == {ExplicitVRLittleEndian}
    assert rejected == {DeflatedExplicitVRLittleEndian}


def test_no_patient_identifiers_in_the_log(node_factory, tmp_path):
    node = node_factory(logging={"level": "DEBUG"}).start()
    spec = dicomgen.study("phi", [3])[0]
    assert storescu(node.port, dicomgen.write_series(spec, tmp_path / "phi")).returncode == 0
    assert echo(node.port)
    node.stop()
    assert node.proc.returncode == 0, node.log_text()[-2000:]  # SIGTERM is a clean stop
    text = node.log_text()
    assert "stored" in text  # DEBUG lines were written
    for canary in (dicomgen.CANARY_NAME, dicomgen.CANARY_ID, "19010101", "CANARY"):
        assert canary not in text

"""kill -9 of the node mid-transfer: every acknowledged instance survives, nothing is orphaned."""

from __future__ import annotations

import hashlib
import random
import time

from pydicom import dcmread

from testkit import dicomgen
from testkit.crash import acknowledged_files, start_storescu


def test_kill_9_while_storescu_sends_loses_no_acknowledged_instance(node_factory, tmp_path):
    specs = dicomgen.study("crash", [300, 300, 300])
    node = node_factory(stability={"series_seconds": 60, "study_seconds": 60})
    rng = random.Random(7)
    acknowledged: set[str] = set()
    for round_, spec in enumerate(specs):
        files = dicomgen.write_series(spec, tmp_path / f"series{round_}")
        node.start()
        sender = start_storescu(node.port, files)
        # Kill after a random share of the series has arrived.
        target = rng.randint(20, 250)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (count,) = node.query(
                "select count(*) from instances i join series s on i.series_id = s.id "
                f"where s.series_uid = '{spec.series_uid}'"
            )[0]
            if count >= min(target, 299) or sender.poll() is not None:
                break
            time.sleep(0.02)
        node.kill()
        output, _ = sender.communicate(timeout=60)
        acked = acknowledged_files(output)
        assert acked, f"round {round_}: nothing was acknowledged before the kill"
        assert len(acked) < len(files), f"round {round_}: the kill came after the last store"
        acknowledged.update(acked)

        node.start()  # recovery runs at start-up
        rows = {
            sop: (rel, sha)
            for sop, rel, sha in node.query("select sop_instance_uid, path, sha256 from instances")
        }
        for name in acknowledged:
            sent = dcmread(name)
            assert sent.SOPInstanceUID in rows, f"acknowledged instance lost: {name}"
            rel, sha = rows[sent.SOPInstanceUID]
            stored = node.store / rel
            assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
            assert dcmread(stored) == sent
        on_disk = {p.relative_to(node.store).as_posix() for p in node.stored_files()}
        assert on_disk == {rel for rel, _ in rows.values()}, "orphan files or rows without file"
        assert list((node.store / ".incoming").iterdir()) == []
        node.kill()

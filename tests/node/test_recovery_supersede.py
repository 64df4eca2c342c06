"""A crash between a supersede's renames and its commit: the acknowledged copy comes back."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from dicomnode.store.recovery import recover

# Stores instance 0 with pixel ``value``; with ``crash``, dies (os._exit) right after the
# received copy was renamed into place (its directory synced only after the commit), before
# the transaction commits.
_CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from dicomnode.store import ingest
    from dicomnode.store.db import open_database
    from testkit import dicomgen

    root, value, crash = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "crash"
    db = open_database(f"sqlite:///{root / 'state.db'}")
    store = ingest.Store(root / "store", db, min_free=0)
    ds = dicomgen.instance(dicomgen.study("supersede", [1])[0], 0, value=value)
    spool = store.incoming / "in.dcm"
    ds.save_as(spool, enforce_file_format=True)
    rename = ingest.files.rename

    def rename_then_die(src, dst):
        rename(src, dst)
        if crash and Path(src) == spool:
            os._exit(9)

    ingest.files.rename = rename_then_die
    store.ingest(spool, sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID)
    """
)


def _store(tmp_path, value: int, mode: str) -> int:
    args = [sys.executable, "-c", _CHILD, str(tmp_path), str(value), mode]
    return subprocess.run(args, capture_output=True, timeout=60).returncode


def test_interrupted_supersede_keeps_the_acknowledged_copy(tmp_path):
    assert _store(tmp_path, 1, "ok") == 0  # acknowledged
    assert _store(tmp_path, 2, "crash") == 9  # a changed re-send, killed before its commit
    db = open_database(f"sqlite:///{tmp_path / 'state.db'}")
    store = Store(tmp_path / "store", db, min_free=0)
    report = recover(store)
    ((path, sha),) = db.engine.connect().exec_driver_sql("select path, sha256 from instances")
    db.dispose()
    assert report.restored == 1 and not report.missing_files and not report.unindexed_files
    stored = (store.root / path).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == sha
    assert int.from_bytes(stored[-2:], "little") == 1  # pixel value of the first copy
    assert list(store.superseded.rglob("*.dcm")) == []

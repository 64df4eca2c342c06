"""The durable store in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dicomnode.errors import OutOfSpace, StoreRejected
from dicomnode.store import files
from dicomnode.store.ingest import Store, StoreOutcome
from dicomnode.store.models import AuditEvent, CompletionState, Instance, Series, Study
from dicomnode.store.recovery import recover, verify
from testkit import dicomgen


@pytest.fixture
def store(database, tmp_path) -> Store:
    return Store(tmp_path / "store", database, min_free=0)


def _spool(store: Store, ds, name: str = "rx.dcm") -> Path:
    path = store.incoming / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _ingest(store: Store, ds, name: str = "rx.dcm"):
    return store.ingest(
        _spool(store, ds, name),
        sop_class_uid=ds.SOPClassUID,
        sop_instance_uid=ds.SOPInstanceUID,
        calling_ae="SCU",
    )


def _count(store: Store, model) -> int:
    with store.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


SPEC = dicomgen.study("store", [4])[0]


def test_new_instance_is_written_indexed_and_spool_consumed(store):
    ds = dicomgen.instance(SPEC, 0)
    result = _ingest(store, ds)
    assert result.outcome is StoreOutcome.STORED
    expected = store.root / SPEC.study_uid / SPEC.series_uid / f"{ds.SOPInstanceUID}.dcm"
    assert result.path == expected and expected.is_file()
    assert list(store.incoming.iterdir()) == []
    with store.db.session() as s:
        inst = s.scalar(select(Instance))
        assert inst.sha256 == hashlib.sha256(expected.read_bytes()).hexdigest()
        assert inst.size == expected.stat().st_size
        assert inst.calling_ae == "SCU"
        series = s.scalar(select(Series))
        assert series.state is CompletionState.OPEN and series.modality == "CT"
        assert s.scalar(select(Study)).study_uid == SPEC.study_uid


def test_identical_resend_is_a_duplicate_without_new_work(store):
    ds = dicomgen.instance(SPEC, 1)
    _ingest(store, ds)
    audited = _count(store, AuditEvent)  # series.received
    with store.db.session() as s:
        before = s.scalar(select(Series.last_received_at))
    assert _ingest(store, ds).outcome is StoreOutcome.DUPLICATE
    with store.db.session() as s:
        assert s.scalar(select(Series.last_received_at)) == before
    assert _count(store, Instance) == 1
    assert _count(store, AuditEvent) == audited == 1
    assert list(store.incoming.iterdir()) == []


def test_changed_bytes_supersede_keeping_the_old_version(store):
    _ingest(store, dicomgen.instance(SPEC, 2))
    with store.db.session() as s:
        s.scalar(select(Series)).state = CompletionState.COMPLETE
    result = _ingest(store, dicomgen.instance(SPEC, 2, value=99))
    assert result.outcome is StoreOutcome.SUPERSEDED
    kept = list(store.superseded.rglob("*.dcm"))
    assert len(kept) == 1
    assert _count(store, Instance) == 1
    with store.db.session() as s:
        kinds = set(s.scalars(select(AuditEvent.kind)))
        assert s.scalar(select(Series.state)) is CompletionState.OPEN
    assert {"instance.superseded", "series.reopened"} <= kinds


def test_a_late_arrival_reopens_a_complete_series_this_store_has_not_seen(store):
    # two SCP processes: each its own Store (and id cache) on the one database
    other = Store(store.root, store.db, min_free=0)
    _ingest(other, dicomgen.instance(SPEC, 0))
    with store.db.session() as s:
        s.scalar(select(Series)).state = CompletionState.COMPLETE
        s.scalar(select(Study)).state = CompletionState.COMPLETE
        before = s.scalar(select(Series.last_received_at))
    assert _ingest(store, dicomgen.instance(SPEC, 1)).outcome is StoreOutcome.STORED
    with store.db.session() as s:
        assert s.scalar(select(Series.state)) is CompletionState.OPEN
        assert s.scalar(select(Study.state)) is CompletionState.OPEN
        assert s.scalar(select(Series.last_received_at)) > before
        kinds = list(s.scalars(select(AuditEvent.kind)))
    assert kinds.count("series.reopened") == 1 and kinds.count("study.reopened") == 1


def test_uid_mismatch_and_invalid_uids_are_refused(store):
    ds = dicomgen.instance(SPEC, 3)
    with pytest.raises(StoreRejected) as err:
        store.ingest(
            _spool(store, ds), sop_class_uid=ds.SOPClassUID, sop_instance_uid=dicomgen.uid("other")
        )
    assert err.value.status == 0xA900
    ds.SeriesInstanceUID = "1.2.3/../../x"
    with pytest.raises(StoreRejected) as err:
        _ingest(store, ds)
    assert err.value.status == 0xC000
    assert list(store.incoming.iterdir()) == []
    assert _count(store, Instance) == 0


def test_below_min_free_answers_out_of_resources_and_leaves_nothing(store):
    store.min_free = 10**18
    with pytest.raises(OutOfSpace) as err:
        _ingest(store, dicomgen.instance(SPEC, 0))
    assert err.value.status == 0xA700
    assert list(store.incoming.iterdir()) == []
    assert not any(p.is_file() for p in store.root.rglob("*") if ".incoming" not in p.parts)


def test_failed_commit_undoes_the_rename(store):
    from sqlalchemy import event

    ds = dicomgen.instance(SPEC, 0)
    renamed = []

    def disk_full_at_commit(conn):
        renamed.extend(store.root.glob("*/*/*.dcm"))  # the file is in place at commit time
        raise OSError(28, "No space left on device")

    event.listen(store.db.engine, "commit", disk_full_at_commit)
    try:
        with pytest.raises(StoreRejected) as err:
            _ingest(store, ds)
    finally:
        event.remove(store.db.engine, "commit", disk_full_at_commit)
    assert err.value.status == 0xA700
    assert len(renamed) == 1
    assert list(store.root.rglob("*.dcm")) == []
    assert _count(store, Instance) == 0
    # and the store works afterwards
    assert _ingest(store, ds).outcome is StoreOutcome.STORED


def test_directory_sync_runs_after_the_commit_and_before_the_return(store, monkeypatch):
    """The instance's directory is synced outside the transaction (on SQLite, outside the
    write lock): a second instance commits while the first waits for its sync, and the first
    returns (is answered) only once its sync is done."""
    import threading

    from dicomnode.store import files

    first, second = dicomgen.instance(SPEC, 0), dicomgen.instance(SPEC, 1)
    final_dir = store.root / SPEC.study_uid / SPEC.series_uid
    in_sync, release = threading.Event(), threading.Event()
    sync_dir = files.fsync_dir

    def held_sync(path):
        if path == final_dir and not in_sync.is_set():
            in_sync.set()
            assert release.wait(10)
        sync_dir(path)

    monkeypatch.setattr(files, "fsync_dir", held_sync)
    results = []
    worker = threading.Thread(target=lambda: results.append(_ingest(store, first, "a.dcm")))
    worker.start()
    try:
        assert in_sync.wait(10)
        with store.db.session() as s:  # the first row is committed before its sync
            assert s.scalar(select(func.count()).select_from(Instance)) == 1
        assert _ingest(store, second, "b.dcm").outcome is StoreOutcome.STORED
        assert results == []  # not answered while its directory is not synced
    finally:
        release.set()
        worker.join(10)
    assert [r.outcome for r in results] == [StoreOutcome.STORED]
    assert _count(store, Instance) == 2


def test_recovery_indexes_complete_orphans_and_clears_the_spool(store):
    ds = dicomgen.instance(SPEC, 0)
    _ingest(store, ds)
    # A crash between rename and commit leaves a complete file without a row.
    orphan = dicomgen.instance(SPEC, 1)
    target = store.root / SPEC.study_uid / SPEC.series_uid / f"{orphan.SOPInstanceUID}.dcm"
    orphan.save_as(target, enforce_file_format=True)
    (store.incoming / "tmpabc.dcm").write_bytes(b"partial")
    assert verify(store).unindexed_files == [target.relative_to(store.root).as_posix()]
    report = recover(store)
    assert report.indexed == 1 and report.spool_removed == 1
    assert _count(store, Instance) == 2
    assert verify(store).unindexed_files == [] and verify(store).missing_files == []
    # An indexed file that vanished is reported, never dropped silently.
    target.unlink()
    assert recover(store).missing_files == [target.relative_to(store.root).as_posix()]
    assert _count(store, Instance) == 2


@pytest.mark.parametrize("size", [0, 1, 262_143, 262_144, 262_145, 1_000_003])
def test_sha256_of_hashes_every_byte(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert files.sha256_of(path) == (hashlib.sha256(data).hexdigest(), size)

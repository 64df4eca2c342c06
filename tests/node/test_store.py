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
    """In the two-flush order (filesystems other than ext4), the instance's directory is synced
    outside the transaction (on SQLite, outside the write lock): a second instance commits
    while the first waits for its sync, and the first returns (is answered) only once its
    sync is done."""
    import threading

    store.one_flush = False
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


def _final(store: Store, ds) -> Path:
    return store.root / SPEC.study_uid / SPEC.series_uid / f"{ds.SOPInstanceUID}.dcm"


@pytest.mark.parametrize("one_flush", [True, False])
def test_flushes_before_success_new_instance(store, monkeypatch, one_flush):
    """On ext4 a new instance costs one flush, its file's, after its rename and before its row;
    elsewhere two: the spool file's, then the directory's after the commit."""
    if one_flush and not store.one_flush:
        pytest.skip("the store's filesystem is not ext4")
    store.one_flush = one_flush
    _ingest(store, dicomgen.instance(SPEC, 0), "a.dcm")  # creates (and syncs) the folders
    ds = dicomgen.instance(SPEC, 1)
    final = _final(store, ds)
    flushes: list[tuple[str, Path, int]] = []
    file_sync, dir_sync = files.fsync_file, files.fsync_dir

    def on_file(path: Path) -> None:
        flushes.append(("file", path, _count(store, Instance)))
        file_sync(path)

    def on_dir(path: Path) -> None:
        flushes.append(("dir", path, _count(store, Instance)))
        dir_sync(path)

    monkeypatch.setattr(files, "fsync_file", on_file)
    monkeypatch.setattr(files, "fsync_dir", on_dir)
    result = _ingest(store, ds, "b.dcm")
    assert result.outcome is StoreOutcome.STORED and final.is_file()
    sha = hashlib.sha256(final.read_bytes()).hexdigest()
    if one_flush:
        assert flushes == [("file", final, 1)]  # renamed first, indexed after the flush
        assert files.content_mark(final) == sha
    else:
        assert flushes == [("file", store.incoming / "b.dcm", 1), ("dir", final.parent, 2)]
        assert files.content_mark(final) is None
    with store.db.session() as s:
        assert s.scalar(select(Instance.sha256).where(Instance.path.like(f"%{final.name}"))) == sha


def test_one_flush_never_replaces_a_file_it_finds_in_place(store):
    """A file already at a new instance's path (another SCP process's, or one a crash left
    without a row) is not replaced by the one-flush rename: the two-flush order decides."""
    if not store.one_flush:
        pytest.skip("the store's filesystem is not ext4")
    ds = dicomgen.instance(SPEC, 0)
    final = _final(store, ds)
    final.parent.mkdir(parents=True)
    final.write_bytes(b"left in place")
    spool = _spool(store, ds)
    sent = spool.read_bytes()
    assert not files.rename_new(spool, final, "0" * 64)
    assert final.read_bytes() == b"left in place" and spool.read_bytes() == sent
    result = store.ingest(spool, sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID)
    assert result.outcome is StoreOutcome.STORED and final.read_bytes() == sent
    # the ingest's own try marked the file with its hash: a mark is always the content's
    assert files.content_mark(final) == hashlib.sha256(sent).hexdigest()


def test_recovery_quarantines_a_marked_orphan_whose_content_is_torn(store):
    """A file renamed into place with its content's hash before the fsync that a power loss
    interrupted: its content may be torn, and it is indexed only when it still hashes right."""
    whole, torn = dicomgen.instance(SPEC, 0), dicomgen.instance(SPEC, 1)
    for ds in (whole, torn):
        spool = _spool(store, ds, f"{ds.SOPInstanceUID}.dcm")
        final = _final(store, ds)
        final.parent.mkdir(parents=True, exist_ok=True)
        assert files.rename_new(spool, final, files.sha256_of(spool)[0])
    torn_path = _final(store, torn)
    data = torn_path.read_bytes()
    torn_path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    report = recover(store)
    assert (report.indexed, report.quarantined) == (1, 1)
    with store.db.session() as s:
        assert list(s.scalars(select(Instance.path))) == [
            _final(store, whole).relative_to(store.root).as_posix()
        ]
    assert not torn_path.exists()
    assert list((store.root / ".quarantine").rglob("*.dcm")) == [
        store.root / ".quarantine" / torn_path.relative_to(store.root)
    ]

"""Retention: processed studies go after keep_days or when space runs low; nothing else does."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from dicomnode.store.ingest import Store, StoreOutcome
from dicomnode.store.models import AuditEvent, Instance, Study, utcnow
from dicomnode.store.retention import sweep_retention
from dicomnode.store.stability import sweep
from testkit import dicomgen


def _receive(store: Store, spec, index: int):
    ds = dicomgen.instance(spec, index)
    path = store.incoming / "rx.dcm"
    ds.save_as(path, enforce_file_format=True)
    return store.ingest(path, sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID)


def _studies(store: Store) -> set[str]:
    with store.db.session() as s:
        return set(s.scalars(select(Study.study_uid)))


def test_expired_processed_studies_go_and_the_rest_stay(database, tmp_path):
    store = Store(tmp_path / "store", database, min_free=0)
    old, busy, fresh = (dicomgen.study(name, [2])[0] for name in ("old", "busy", "fresh"))
    for spec in (old, busy):
        _receive(store, spec, 0)
        _receive(store, spec, 1)
    t0 = utcnow()
    sweep(database, series_seconds=1, study_seconds=1, now=t0 + timedelta(seconds=5))
    _receive(store, fresh, 0)  # open: never removed
    later = t0 + timedelta(days=8)
    report = sweep_retention(
        store,
        keep_days=7,
        low_water=0,
        now=later,
        busy=lambda session, uid: uid == busy.study_uid,
    )
    assert report.studies == [old.study_uid] and report.bytes_freed > 0
    assert _studies(store) == {busy.study_uid, fresh.study_uid}
    assert not (store.root / old.study_uid).exists()
    assert not list((store.root / ".trash").iterdir())
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 3
        assert (
            s.scalar(select(AuditEvent.subject).where(AuditEvent.kind == "study.deleted"))
            == old.study_uid
        )
    # the removed study, sent again, is stored afresh
    assert _receive(store, old, 0).outcome is StoreOutcome.STORED
    assert (store.root / old.study_uid / old.series_uid).is_dir()


def test_low_space_removes_oldest_processed_studies_first(database, tmp_path):
    store = Store(tmp_path / "store", database, min_free=0)
    specs = [dicomgen.study(f"em{n}", [1])[0] for n in range(3)]
    t0 = utcnow()
    for n, spec in enumerate(specs):
        _receive(store, spec, 0)
        sweep(database, series_seconds=1, study_seconds=1, now=t0 + timedelta(seconds=10 * (n + 1)))
    kept = dicomgen.study("em-open", [1])[0]
    _receive(store, kept, 0)
    report = sweep_retention(store, keep_days=0, low_water=10**18, now=t0 + timedelta(hours=1))
    assert report.emergency
    assert report.studies == [s.study_uid for s in specs]  # oldest first
    assert _studies(store) == {kept.study_uid}

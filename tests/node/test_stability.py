"""Series/study completion from the database: once per quiet period, across restarts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from dicomnode.store.models import AuditEvent, CompletionState, Series, Study, utcnow
from dicomnode.store.stability import SweepResult, sweep
from tests.support import dicomgen


def _receive(store: Store, spec, index: int) -> None:
    ds = dicomgen.instance(spec, index)
    path = store.incoming / "rx.dcm"
    ds.save_as(path, enforce_file_format=True)
    store.ingest(path, sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID)


def test_quiet_series_completes_once_and_late_arrival_reopens(database, tmp_path):
    store = Store(tmp_path / "store", database, min_free=0)
    spec = dicomgen.study("stab", [2])[0]
    _receive(store, spec, 0)
    now = utcnow()
    assert sweep(database, series_seconds=30, study_seconds=90, now=now) == SweepResult()
    later = now + timedelta(seconds=31)
    assert sweep(database, series_seconds=30, study_seconds=90, now=later).series == [
        spec.series_uid
    ]
    # The study waits longer; a second sweep completes nothing new.
    assert sweep(database, series_seconds=30, study_seconds=90, now=later) == SweepResult()
    much_later = now + timedelta(seconds=91)
    assert sweep(database, series_seconds=30, study_seconds=90, now=much_later).studies == [
        spec.study_uid
    ]
    _receive(store, spec, 1)  # late arrival
    with database.session() as s:
        series = s.scalar(select(Series))
        assert series.state is CompletionState.OPEN and series.completions == 1
        assert s.scalar(select(Study.state)) is CompletionState.OPEN
    result = sweep(
        database, series_seconds=30, study_seconds=90, now=utcnow() + timedelta(seconds=100)
    )
    assert result == SweepResult(series=[spec.series_uid], studies=[spec.study_uid])
    with database.session() as s:
        assert s.scalar(select(Series.completions)) == 2
        kinds = list(s.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)))
    assert kinds.count("series.complete") == 2 and kinds.count("series.reopened") == 1


def test_restart_inside_the_window_completes_exactly_once(database, tmp_path):
    store = Store(tmp_path / "store", database, min_free=0)
    spec = dicomgen.study("restart", [1])[0]
    _receive(store, spec, 0)
    t0 = utcnow()
    assert (
        sweep(database, series_seconds=30, study_seconds=30, now=t0 + timedelta(seconds=10))
        == SweepResult()
    )
    # "Restart": a new engine on the same database, as a new process would open it.
    url = database.engine.url.render_as_string(hide_password=False)
    database.dispose()
    reopened = open_database(url)
    seen: list[SweepResult] = []
    hook = lambda session, result: seen.append(result)  # noqa: E731
    first = sweep(
        reopened, series_seconds=30, study_seconds=30, now=t0 + timedelta(seconds=31), hooks=[hook]
    )
    second = sweep(
        database, series_seconds=30, study_seconds=30, now=t0 + timedelta(seconds=32), hooks=[hook]
    )
    assert first.series == [spec.series_uid] and second == SweepResult()
    assert [r.series for r in seen] == [[spec.series_uid], []]
    reopened.dispose()


def test_hook_failure_rolls_back_the_completion(database, tmp_path):
    store = Store(tmp_path / "store", database, min_free=0)
    spec = dicomgen.study("hook", [1])[0]
    _receive(store, spec, 0)

    def failing(session, result):
        raise RuntimeError("queue unavailable")

    later = utcnow() + timedelta(seconds=60)
    with pytest.raises(RuntimeError):
        sweep(database, series_seconds=30, study_seconds=30, now=later, hooks=[failing])
    with database.session() as s:
        assert s.scalar(select(Series.state)) is CompletionState.OPEN
    assert sweep(database, series_seconds=30, study_seconds=30, now=later).series == [
        spec.series_uid
    ]

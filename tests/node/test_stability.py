"""Series/study completion from the database: once per quiet period, across restarts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from dicomnode.store.models import (
    AuditEvent,
    CompletionSignal,
    CompletionState,
    Series,
    Study,
    utcnow,
)
from dicomnode.store.stability import (
    Completion,
    Level,
    SweepResult,
    complete_now,
    studies_all_complete,
    sweep,
)
from testkit import dicomgen


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
    seen: list[Completion] = []

    def hook(db, completion):
        seen.append(completion)

    first = sweep(
        reopened, series_seconds=30, study_seconds=30, now=t0 + timedelta(seconds=31), hooks=[hook]
    )
    second = sweep(
        database, series_seconds=30, study_seconds=30, now=t0 + timedelta(seconds=32), hooks=[hook]
    )
    assert first.series == [spec.series_uid] and second == SweepResult()
    assert seen == [
        Completion(Level.SERIES, spec.series_uid, 1),
        Completion(Level.STUDY, spec.study_uid, 1),
    ]
    reopened.dispose()


def test_a_failing_hook_leaves_the_completion_to_the_next_sweep(database, tmp_path):
    """The completion commits on its own; its consequences commit once, after a failure too."""
    store = Store(tmp_path / "store", database, min_free=0)
    spec = dicomgen.study("hook", [1])[0]
    _receive(store, spec, 0)
    written: list[Completion] = []

    def failing(db, completion):
        raise RuntimeError("queue unavailable")

    def working(db, completion):
        return lambda session: written.append(completion)

    later = utcnow() + timedelta(seconds=60)
    result = sweep(database, series_seconds=30, study_seconds=30, now=later, hooks=[failing])
    assert result.series == [spec.series_uid]
    with database.session() as s:
        assert s.execute(select(Series.state, Series.completions, Series.handled)).one() == (
            CompletionState.COMPLETE,
            1,
            0,
        )
    # the next sweep completes nothing new, and hands the completion on once
    assert sweep(database, series_seconds=30, study_seconds=30, now=later, hooks=[working]) == (
        SweepResult()
    )
    assert sweep(database, series_seconds=30, study_seconds=30, now=later, hooks=[working]) == (
        SweepResult()
    )
    assert written == [
        Completion(Level.SERIES, spec.series_uid, 1),
        Completion(Level.STUDY, spec.study_uid, 1),
    ]


def test_a_series_reopened_while_its_hook_works_is_handled_at_its_next_completion(
    database, tmp_path
):
    store = Store(tmp_path / "store", database, min_free=0)
    spec = dicomgen.study("race", [2])[0]
    _receive(store, spec, 0)
    written: list[Completion] = []

    def slow(db, completion):
        if completion.level is Level.SERIES and completion.number == 1:
            _receive(store, spec, 1)  # arrives while the pipeline check runs: re-opens
        return lambda session: written.append(completion)

    t0 = utcnow()
    sweep(
        database, series_seconds=30, study_seconds=600, now=t0 + timedelta(seconds=31), hooks=[slow]
    )
    assert written == []
    sweep(
        database,
        series_seconds=30,
        study_seconds=600,
        now=utcnow() + timedelta(seconds=31),
        hooks=[slow],
    )
    assert written == [Completion(Level.SERIES, spec.series_uid, 2)]
    with database.session() as s:
        assert s.execute(select(Series.completions, Series.handled)).one() == (2, 2)


def test_a_signal_completes_at_once_and_the_timer_does_not_complete_it_again(database, tmp_path):
    store = Store(tmp_path / "store", database, min_free=0)
    first, second = dicomgen.study("signal", [2, 1])
    for spec in (first, second):
        _receive(store, spec, 0)
    assert studies_all_complete(database, [first.study_uid]) == []
    done = complete_now(database, CompletionSignal.COMMITMENT, series=[first.series_uid, "1.2.3"])
    assert done == SweepResult(series=[first.series_uid])
    # one series of the study is still open: the study is not complete yet
    assert studies_all_complete(database, [first.study_uid]) == []
    complete_now(database, CompletionSignal.MPPS, series=[second.series_uid])
    assert studies_all_complete(database, [first.study_uid]) == [first.study_uid]
    assert complete_now(database, CompletionSignal.MPPS, studies=[first.study_uid]).studies == [
        first.study_uid
    ]
    # the timer finds nothing open; a repeated signal completes nothing either
    later = utcnow() + timedelta(seconds=1000)
    assert sweep(database, series_seconds=30, study_seconds=90, now=later) == SweepResult()
    assert complete_now(database, CompletionSignal.CONFIRM, series=[first.series_uid]) == (
        SweepResult()
    )
    with database.session() as s:
        by = dict(s.execute(select(Series.series_uid, Series.completed_by)).all())
        assert by == {first.series_uid: "commitment", second.series_uid: "mpps"}
        assert s.scalar(select(Study.completed_by)) == "mpps"
        details = list(
            s.scalars(select(AuditEvent.detail).where(AuditEvent.kind == "series.complete"))
        )
    assert sorted(details) == ["by commitment", "by mpps"]
    # a late instance re-opens the signalled series; the timer completes it next
    _receive(store, first, 1)
    assert sweep(database, series_seconds=30, study_seconds=90, now=later).series == [
        first.series_uid
    ]
    with database.session() as s:
        assert (
            s.scalar(select(Series.completed_by).where(Series.series_uid == first.series_uid))
            == "timer"
        )

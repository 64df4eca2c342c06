"""Study-level routes with named inputs queue their job once every input is complete,
without waiting for the study timer; the study's own completion queues no second job."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from dicomnode.jobs import Job
from dicomnode.store.ingest import Store
from dicomnode.store.models import CompletionSignal, CompletionState, Study, utcnow
from dicomnode.store.stability import complete_now, hand_on, sweep
from testkit.dicomgen import study
from testkit.seriesgen import write_series
from tests.jobs.helpers import config, hook_for, ingest

BRAIN = {
    "name": "brain",
    "pipeline": "toy",
    "level": "study",
    "when": {"Modality": "MR"},
    "inputs": {
        "t1": {"SeriesDescription": {"regex": "^t1"}},
        "flair": {"SeriesDescription": {"regex": "flair"}},
    },
    "send_to": ["pacs"],
}


def _jobs(db):
    with db.session() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def _study_state(db, uid):
    with db.session() as session:
        return session.scalar(select(Study.state).where(Study.study_uid == uid))


@pytest.fixture
def env(database, tmp_path):
    """The brain route, series timer 1 s, study timer an hour: the hook and the store."""
    url = database.engine.url.render_as_string(hide_password=False)
    cfg = config(
        tmp_path, url, stability={"series_seconds": 1, "study_seconds": 3600}, routes=[BRAIN]
    )
    return hook_for(cfg), Store(cfg.store_path, database, min_free=0)


def test_job_queued_when_both_inputs_complete_and_once_after_the_study_timer(
    database, env, tmp_path
):
    hook, store = env
    t1, flair, dwi = (replace(s, modality="MR") for s in study("early", [2, 3, 2]))
    ingest(store, write_series(t1, tmp_path / "t1", description="t1 axial"))
    ingest(store, write_series(flair, tmp_path / "fl", description="ax FLAIR"))
    ingest(store, write_series(dwi, tmp_path / "dw", description="dwi"))

    # t1 completes by a signal: flair is still open, so no job yet
    done = complete_now(database, CompletionSignal.CONFIRM, series=[t1.series_uid])
    assert done.series == [t1.series_uid]
    hand_on(database, [hook])
    assert _jobs(database) == []

    # the series timer completes flair (and dwi); the study timer is an hour away
    soon = utcnow() + timedelta(seconds=30)
    result = sweep(database, series_seconds=1, study_seconds=3600, now=soon, hooks=[hook])
    assert sorted(result.series) == sorted([flair.series_uid, dwi.series_uid])
    assert result.studies == []
    (job,) = _jobs(database)
    assert job.level == "study" and job.subject == t1.study_uid and job.route == "brain"
    assert json.loads(job.inputs) == [
        {"series_uid": t1.series_uid, "role": "t1"},
        {"series_uid": flair.series_uid, "role": "flair"},
    ]
    assert _study_state(database, t1.study_uid) == CompletionState.OPEN

    # the study timer fires later: same inputs, same instances, same key: no second job
    later = utcnow() + timedelta(hours=2)
    result = sweep(database, series_seconds=1, study_seconds=3600, now=later, hooks=[hook])
    assert result.studies == [t1.study_uid]
    assert [j.id for j in _jobs(database)] == [job.id]


def test_missing_input_waits_for_the_study(database, env, tmp_path):
    hook, store = env
    t1, dwi = (replace(s, modality="MR") for s in study("nofl", [2, 2]))
    ingest(store, write_series(t1, tmp_path / "t1", description="t1 axial"))
    ingest(store, write_series(dwi, tmp_path / "dw", description="dwi"))
    soon = utcnow() + timedelta(seconds=30)
    result = sweep(database, series_seconds=1, study_seconds=3600, now=soon, hooks=[hook])
    assert len(result.series) == 2
    assert _jobs(database) == []
    assert _study_state(database, t1.study_uid) == CompletionState.OPEN

"""Job timelines on SQLite and PostgreSQL: the completion's signal, retries, and the stage
histograms following ``job_stages`` (ids committed out of order included)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from dicomnode.api.stage_metrics import StageMetrics
from dicomnode.export import Attempt, Verdict, claim_due
from dicomnode.export import record as record_attempt
from dicomnode.jobs import Backoff, ResultRecord, claim, fail, succeed
from dicomnode.jobs.models import JobStage
from dicomnode.jobs.report import job_rows
from dicomnode.jobs.timeline import Stage, StageMark, interval
from dicomnode.store.ingest import Store
from dicomnode.store.models import CompletionSignal, utcnow
from dicomnode.store.stability import complete_now, hand_on
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import config, hook_for, ingest


def _url(database) -> str:
    return str(database.engine.url.render_as_string(hide_password=False))


def _count(metrics: StageMetrics, name: str, labels: dict[str, str]) -> float:
    for family in metrics.collect():
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return 0.0


def test_signalled_retried_delivered_job_keeps_every_attempt_shows_the_latest(database, tmp_path):
    cfg = config(tmp_path, _url(database))
    store = Store(cfg.store_path, database, min_free=0)
    metrics = StageMetrics(database)
    metrics.start()
    (ct,) = specs("signal", 1)
    ingest(store, write_series(ct, tmp_path / "ct"))
    done = complete_now(database, CompletionSignal.COMMITMENT, series=[ct.series_uid])
    assert done.series == [ct.series_uid]
    assert hand_on(database, [hook_for(cfg)]) == 1
    first = claim(database, "w1", lease_seconds=30)
    assert first is not None and first.attempt == 1
    assert fail(database, first, "boom", backoff=Backoff(0, 0)) is not None
    second = claim(database, "w2", lease_seconds=30)
    assert second is not None and second.attempt == 2
    ready = utcnow()
    marks = [
        StageMark(Stage.MODEL_READY, ready, None, 2),
        StageMark(Stage.INFERENCE_DONE, ready + timedelta(seconds=5), None, 2),
    ]
    result = ResultRecord("1.2.3.77", "1.2.840.10008.5.1.4.1.1.7", "1.2.3", ct.study_uid, "x/77")
    assert succeed(database, second, [result], stages=marks)
    (due,) = claim_due(database, "exp", results=tmp_path, lease_seconds=60)
    delivered = Attempt(Verdict.DELIVERED, 0, "stored")
    record_attempt(database, due, delivered, owner="exp", max_attempts=3, backoff=Backoff(0, 0))

    with database.session() as session:
        attempts = sorted(
            session.scalars(select(JobStage.attempt).where(JobStage.stage == "started"))
        )
    assert attempts == [1, 2]  # every attempt's rows are kept
    (row,) = job_rows(database)
    timeline = row["timeline"]
    assert [e["stage"] for e in timeline] == [stage.value for stage in Stage]
    assert [e["attempt"] for e in timeline] == [0, 0, 0, 2, 2, 2, 2, 2]
    by_stage = {e["stage"]: e for e in timeline}
    assert by_stage["completed"]["detail"] == "commitment"
    assert by_stage["started"]["detail"] == "w2"
    assert by_stage["inference_done"]["seconds"] == 5.0
    assert by_stage["delivered"]["detail"] == "pacs"

    assert metrics.poll() == 9  # 3 before the runs, 1 + 4 by the attempts, 1 delivery
    assert _count(metrics, "dicomnode_completion_signal_total", {"signal": "commitment"}) == 1
    inference = {"stage": interval(Stage.INFERENCE_DONE), "pipeline": "toy"}
    assert _count(metrics, "dicomnode_stage_seconds_count", inference) == 1
    assert _count(metrics, "dicomnode_stage_seconds_sum", inference) == 5.0
    assert _count(metrics, "dicomnode_job_latency_seconds_count", {"pipeline": "toy"}) == 1
    assert metrics.poll() == 0  # each row is observed once


def test_stage_committed_after_a_later_id_is_still_observed(database, tmp_path):
    cfg = config(tmp_path, _url(database))
    store = Store(cfg.store_path, database, min_free=0)
    (ct,) = specs("gap", 1)
    ingest(store, write_series(ct, tmp_path / "ct"))
    complete_now(database, CompletionSignal.CONFIRM, series=[ct.series_uid])
    hand_on(database, [hook_for(cfg)])
    job = claim(database, "w", lease_seconds=30)
    assert job is not None
    metrics = StageMetrics(database)
    metrics.start()
    with database.session() as session:
        top = session.scalar(select(JobStage.id).order_by(JobStage.id.desc()).limit(1))
    now = utcnow()
    with database.session() as session:  # id top+2 commits first, top+1 after the look
        session.add(JobStage(id=top + 2, job_id=job.id, attempt=1, stage="inference_done", at=now))
    assert metrics.poll() == 1
    with database.session() as session:
        session.add(
            JobStage(
                id=top + 1,
                job_id=job.id,
                attempt=1,
                stage="model_ready",
                at=now - timedelta(seconds=2),
            )
        )
    assert metrics.poll() == 1
    ready = {"stage": interval(Stage.MODEL_READY), "pipeline": "toy"}
    assert _count(metrics, "dicomnode_stage_seconds_count", ready) == 1
    assert metrics.poll() == 0

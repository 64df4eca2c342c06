"""The routing hook's ``routing.no_match`` rows: no routes at all, study-level routes, a
re-completion that then matches (``dicomnode status`` no longer says ``no route``)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from dicomnode.jobs.enqueue import NO_ROUTES
from dicomnode.store.ingest import Store
from dicomnode.store.models import AuditEvent
from dicomnode.store.report import NO_ROUTE, series_rows
from testkit import dicomgen
from tests.jobs.helpers import complete_all, config, hook_for, ingest


@pytest.fixture
def url(database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def _no_match(db) -> list[tuple[str | None, str | None]]:
    with db.session() as session:
        query = select(AuditEvent.subject, AuditEvent.detail).where(
            AuditEvent.kind == "routing.no_match"
        )
        return [tuple(row) for row in session.execute(query.order_by(AuditEvent.id))]


def _send(db, cfg, spec, tmp_path) -> None:
    store = Store(cfg.store_path, db, min_free=0)
    ingest(store, dicomgen.write_series(spec, tmp_path / spec.series_uid[-6:]))


def test_no_routes_configured_is_said_once_per_series(database, url, tmp_path, caplog):
    cfg = config(tmp_path, url, routes=[])
    specs = dicomgen.study("none", [1, 1])
    for spec in specs:
        _send(database, cfg, spec, tmp_path)
    with caplog.at_level(logging.INFO, logger="dicomnode"):
        complete_all(database, cfg)
    # series and study complete in one sweep: one row per series, none for the study
    assert _no_match(database) == [(spec.series_uid, NO_ROUTES) for spec in specs]
    assert caplog.text.count("no route matched") == 2
    assert {row["routing"] for row in series_rows(database)} == {NO_ROUTE}


def test_a_study_level_route_that_does_not_match_marks_the_study(database, url, tmp_path):
    route = {
        "name": "pair",
        "pipeline": "toy",
        "level": "study",
        "when": {"Modality": "MR"},
        "send_to": ["pacs"],
    }
    cfg = config(tmp_path, url, routes=[route])
    (spec,) = dicomgen.study("study", [1])
    _send(database, cfg, spec, tmp_path)
    complete_all(database, cfg)
    ((subject, detail),) = _no_match(database)
    assert subject == spec.study_uid
    assert detail.startswith("pair: when: none of 1 series matches (closest ")
    assert detail.endswith("Modality: expected 'MR', got 'CT')")
    assert [row["routing"] for row in series_rows(database)] == [NO_ROUTE]


def test_a_later_completion_that_matches_clears_no_route(database, url, tmp_path):
    mr_only = [{"name": "mr", "pipeline": "toy", "when": {"Modality": "MR"}, "send_to": ["pacs"]}]
    cfg = config(tmp_path, url, routes=mr_only)
    (spec,) = dicomgen.study("later", [2])
    store = Store(cfg.store_path, database, min_free=0)
    files = dicomgen.write_series(spec, tmp_path / "files")
    ingest(store, files[:1])
    complete_all(database, cfg)
    assert [row["routing"] for row in series_rows(database)] == [NO_ROUTE]
    ingest(store, files[1:])  # a late arrival re-opens the series: no longer "no route"
    assert [row["routing"] for row in series_rows(database)] == [None]
    matching = config(tmp_path, url)  # ct-toy
    complete_all(database, matching, hook_for(matching))
    assert len(_no_match(database)) == 1
    assert [row["routing"] for row in series_rows(database)] == [None]

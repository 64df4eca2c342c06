"""``route explain``, ``dicomnode run`` and the live node read a series' header alike.

One rule (the instance with the lowest InstanceNumber represents the series; ties by
SOPInstanceUID; unnumbered instances last) and one exception policy (an unreadable header is
skipped, logged by exception type only, and the next instance tried), in
:mod:`dicomnode.headers`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from dicomnode.headers import read_representative
from dicomnode.jobs import Job
from dicomnode.pipeline import PipelineLevel
from dicomnode.pipeline.runner import discover_inputs
from dicomnode.routing import compile_routes, explain
from dicomnode.store.ingest import Store
from testkit.dicomgen import CANARY_NAME
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import complete_all, config, ingest

ROUTES = [
    {
        "name": name,
        "pipeline": "toy",
        "when": {"SeriesDescription": {"regex": f"(?i){name}"}},
        "send_to": ["pacs"],
    }
    for name in ("flair", "localizer")
]


def _mixed_series(folder: Path) -> dict[str, Path]:
    """Three instances of one series whose headers differ, named against their numbers.

    ``c.dcm`` is InstanceNumber 1 (``AX FLAIR``), ``a.dcm`` number 2 (``LOCALIZER``),
    ``b.dcm`` has neither InstanceNumber nor SeriesDescription.
    """
    (spec,) = specs("agree", 1)
    files = write_series(spec, folder / "tmp")
    changes = {
        "c": {"InstanceNumber": 1, "SeriesDescription": "AX FLAIR"},
        "a": {"InstanceNumber": 2, "SeriesDescription": "LOCALIZER"},
        "b": {"InstanceNumber": None, "SeriesDescription": None},
    }
    named = {}
    for file, (name, values) in zip(files, changes.items(), strict=True):
        ds = pydicom.dcmread(file)
        for keyword, value in values.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        named[name] = folder / f"{name}.dcm"
        ds.save_as(named[name], enforce_file_format=True)
        file.unlink()
    (folder / "tmp").rmdir()
    return named


def _queued_routes(db) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Job.route)))


@pytest.fixture
def env(database, tmp_path):
    url = database.engine.url.render_as_string(hide_password=False)
    cfg = config(tmp_path, url, routes=ROUTES)
    return database, cfg, Store(cfg.store_path, database, min_free=0)


def test_route_explain_and_the_live_node_agree_on_a_series_with_mixed_headers(env, tmp_path):
    db, cfg, store = env
    files = _mixed_series(tmp_path / "series")
    routes = compile_routes(cfg.routes, destinations=set(cfg.destinations))
    explained = {row.route for row in explain(tmp_path / "series", routes) if row.matched}
    # received out of order: the localizer first, the representative last
    ingest(store, [files["a"], files["b"], files["c"]])
    complete_all(db, cfg)
    assert explained == _queued_routes(db) == {"flair"}
    (job,), skipped = discover_inputs(tmp_path / "series", PipelineLevel.SERIES)  # dicomnode run
    assert skipped == [] and job.series[0].description == "AX FLAIR"
    assert [p.name for p in job.series[0].files] == ["a.dcm", "b.dcm", "c.dcm"]


def test_an_unreadable_header_is_skipped_by_type_and_the_next_instance_represents(
    env, tmp_path, monkeypatch, caplog
):
    db, cfg, store = env
    files = _mixed_series(tmp_path / "series")
    ingest(store, [files["c"], files["a"], files["b"]])
    flair = str(pydicom.dcmread(files["c"]).SOPInstanceUID)
    real = pydicom.dcmread

    def damaged(path, *args, **kwargs):
        if Path(path).stem == flair:  # pydicom's messages can quote element values
            raise ValueError(f"invalid value {CANARY_NAME!r}")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", damaged)
    with caplog.at_level(logging.WARNING, logger="dicomnode"):
        complete_all(db, cfg)
    assert _queued_routes(db) == {"localizer"}  # number 2 is next
    assert "unreadable header skipped (ValueError)" in caplog.text
    assert CANARY_NAME not in caplog.text


def test_ties_go_to_the_lowest_sop_uid_and_unnumbered_instances_rank_last(tmp_path):
    (spec,) = specs("ties", 1, count=4)
    files = write_series(spec, tmp_path)
    numbers = [7, None, 3, 3]
    sops = []
    for file, number in zip(files, numbers, strict=True):
        ds = pydicom.dcmread(file)
        if number is None:
            del ds.InstanceNumber
        else:
            ds.InstanceNumber = number
        ds.save_as(file, enforce_file_format=True)
        sops.append(str(ds.SOPInstanceUID))
    best = read_representative(reversed(files))
    assert best is not None and best.number == 3 and best.sop_uid == min(sops[2:])
    assert read_representative(files[:2]).number == 7  # type: ignore[union-attr]
    assert read_representative([tmp_path / "missing.dcm"]) is None

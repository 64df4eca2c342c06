"""SIGHUP reloads the config (issue 15 item 10): allow-list, routes, destinations, log level.

Over a real node process: its config file is edited and the process sent SIGHUP. Settings
that need a restart keep their running value and are named in one log line; an invalid file
(bad YAML, an unknown key) is refused with one log line and the node serves on with the
config it had.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
import yaml

from dicomnode.config import parse_config
from dicomnode.errors import ConfigError
from dicomnode.reload import plan_reload
from testkit import dicomgen
from testkit.nodeproc import NodeProcess, storescu, wait_for
from testkit.seriesgen import write_series

TOY = "testkit.toy_pipeline:ToyPipeline"
ROUTE = {"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "shadow": True}


def _base(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "data_dir": "/tmp/never-used",
        "pipelines": {"toy": {"class": TOY}},
        "destinations": {"pacs": {"ae_title": "PACS", "host": "127.0.0.1", "port": 104}},
    }
    return {**data, **sections}


def test_plan_applies_reloadable_settings_and_names_the_others():
    running = parse_config(_base(node={"port": 11112, "allow": [{"ae_title": "OLD"}]}))
    new = parse_config(
        _base(
            node={"port": 11113, "allow": [{"ae_title": "NEW"}]},
            routes=[{**ROUTE, "send_to": ["pacs"], "shadow": False}],
            logging={"level": "DEBUG", "format": "text"},
            workers={"count": 4},
            database={"url": "sqlite:////tmp/other.db"},
        )
    )
    plan = plan_reload(running, new)
    assert plan.applied == ["logging.level", "node.allow", "routes"]
    assert plan.needs_restart == [
        "database.url",
        "logging.format",
        "node.port",
        "workers.count",
    ]
    assert [r.name for r in plan.routes] == ["ct-toy"]
    cfg = plan.config
    assert [a.ae_title for a in cfg.node.allow] == ["NEW"] and cfg.node.port == 11112
    assert cfg.logging.level == "DEBUG" and cfg.logging.format == running.logging.format
    assert cfg.workers.count == running.workers.count
    assert cfg.database_url == running.database_url
    assert running.node.allow[0].ae_title == "OLD"  # the running config is not touched


def test_plan_refuses_routes_to_a_pipeline_that_needs_a_restart():
    running = parse_config(_base())
    new = parse_config(
        _base(
            pipelines={"toy": {"class": TOY}, "toy2": {"class": TOY}},
            routes=[{**ROUTE, "pipeline": "toy2"}],
        )
    )
    with pytest.raises(ConfigError, match="toy2"):
        plan_reload(running, new, source="node.yaml")


def _write(node: NodeProcess, changes: dict[str, Any]) -> None:
    config = yaml.safe_load(node.config_path.read_text())
    config.update(changes)
    node.config_path.write_text(yaml.safe_dump(config))


def _hup_and_wait(node: NodeProcess, text: str) -> list[dict[str, Any]]:
    """SIGHUP, then the log lines written since, once one has ``text`` in its message."""
    assert node.proc is not None
    offset = len(node.log_text())
    node.proc.send_signal(signal.SIGHUP)

    def lines() -> list[dict[str, Any]]:
        new = [json.loads(line) for line in node.log_text()[offset:].splitlines() if line]
        return new if any(text in entry["message"] for entry in new) else []

    return wait_for(lines, f"{text!r} in the log", timeout=20)


def _stores(node: NodeProcess, files, aet: str) -> bool:
    return storescu(node.port, files, aet=aet, timeout=60).returncode == 0


def test_sighup_reloads_allow_list_routes_and_log_level(node_factory, tmp_path):
    first, second = dicomgen.study("reload", [1, 1])
    first_files = write_series(first, tmp_path / "first")
    second_files = write_series(second, tmp_path / "second")
    node = node_factory(
        node={"allow": [{"ae_title": "OLDSCU"}]},
        pipelines={"toy": {"class": TOY}},
        workers={"count": 0},
        logging={"level": "INFO"},
    ).start()
    assert not _stores(node, first_files, "NEWSCU")
    assert _stores(node, first_files, "OLDSCU")
    series_done = "select handled from series where series_uid = '{}'"
    wait_for(lambda: node.query(series_done.format(first.series_uid)) == [(1,)], "completion")

    config = yaml.safe_load(node.config_path.read_text())
    port = config["node"]["port"]
    _write(
        node,
        {
            "node": {**config["node"], "allow": [{"ae_title": "NEWSCU"}], "port": port + 1},
            "routes": [ROUTE],
            "logging": {"level": "DEBUG"},
        },
    )
    before_hup = len(node.log_text())
    lines = _hup_and_wait(node, "config reloaded")
    restart = [e for e in lines if "needs a restart" in e["message"]]
    assert len(restart) == 1 and "node.port" in restart[0]["message"], lines
    assert _stores(node, second_files, "NEWSCU")  # on the old port: it needs a restart
    assert not _stores(node, second_files, "OLDSCU")
    # the new route is used for the next series (not for the one completed before)
    subjects = "select subject, route from jobs"
    wait_for(lambda: node.query(subjects), "the new route's job", timeout=60)
    assert node.query(subjects) == [(second.series_uid, "ct-toy")]
    # DEBUG lines only once the signal came (a reload that starts the checker child may log
    # its start at DEBUG before the "config reloaded" line)
    log_text = node.log_text()
    assert '"level": "DEBUG"' in log_text[before_hup:]
    assert '"level": "DEBUG"' not in log_text[:before_hup]

    # invalid files are refused, one line each, and the running config stays
    for bad, why in (("node: [unclosed\n", "at line 2"), ("nodes: {}\n", "unknown key")):
        node.config_path.write_text(bad)
        refused = [e for e in _hup_and_wait(node, "refused") if "refused" in e["message"]]
        assert len(refused) == 1 and refused[0]["level"] == "ERROR", refused
        assert "\n" not in refused[0]["message"] and why.lower() in refused[0]["message"].lower()
        assert _stores(node, first_files, "NEWSCU")
        assert not _stores(node, first_files, "OLDSCU")
    kinds = [
        k
        for (k,) in node.query(
            "select kind from audit_events where kind like 'config.%' order by id"
        )
    ]
    assert kinds == ["config.reloaded", "config.refused", "config.refused"]

"""End to end through a node subprocess: storescu → node → toy pipeline → PACS.

The PACS is dcmtk's storescp (``+uf``: every received instance becomes its own file, so a
duplicate delivery would show as an extra file) or a pynetdicom SCP answering a chosen status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dicomnode.jobs.report import job_rows
from dicomnode.store.db import open_database
from testkit.nodeproc import free_port, storescu, wait_for
from testkit.seriesgen import specs, write_series
from tests.export.peers import StatusSCP, Storescp

TOY = "testkit.toy_pipeline:ToyPipeline"
T = TypeVar("T")


def node_config(pacs_port: int, **extra):
    config = {
        "workers": {
            "count": 1,
            "device": "cpu",
            "lease_seconds": 3,
            "heartbeat_seconds": 0.5,
            "poll_seconds": 0.2,
            "backoff_seconds": 0.2,
        },
        "export": {
            "backoff_seconds": 0.3,
            "max_backoff_seconds": 1,
            "poll_seconds": 0.2,
            "timeout": 5,
            "max_attempts": 100,
            "lease_seconds": 3,
        },
        "stability": {"series_seconds": 1, "study_seconds": 2},
        "destinations": {"pacs": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port}},
        "pipelines": {"toy": {"class": TOY, "threshold": 1}},
        "routes": [
            {"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "send_to": ["pacs"]}
        ],
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def jobs(node, *args):
    out = node.cli("jobs", "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_jobs(
    node, ready: Callable[[list[dict[str, Any]]], T], what: str, *, state: str | None = None
) -> T:
    """Wait until ``ready`` holds on the output of ``dicomnode jobs --json``; what it returns.

    The rows are polled in this process first, with the function the CLI prints (a
    ``dicomnode`` process per poll costs a second or more); then the CLI, until it agrees
    (mostly at once; a delivery in flight can make it differ for a moment).
    """
    db = open_database(f"sqlite:///{node.db_path}", migrate=False)
    try:
        wait_for(lambda: ready(job_rows(db, state=state)), what=what)
    finally:
        db.dispose()
    return wait_for(lambda: ready(jobs(node, *(("--state", state) if state else ()))), what)


def send(node, tmp_path: Path, name: str, **kwargs) -> None:
    (spec,) = specs(name, 1)
    files = write_series(spec, tmp_path / f"in-{name}", **kwargs)
    out = storescu(node.port, files)
    assert out.returncode == 0, out.stderr


def torch_mapped(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def test_destination_down_then_up_gets_every_result_exactly_once(node_factory, tmp_path):
    pacs = Storescp(tmp_path / "pacs", free_port())
    node = node_factory(**node_config(pacs.port)).start()
    try:
        send(node, tmp_path, "down-a", value=0)
        send(node, tmp_path, "down-b", value=5)
        pending = wait_jobs(
            node,
            lambda rows: (
                [j for j in rows if j["deliveries"]["pending"] == 3] if len(rows) == 2 else None
            ),
            "results waiting for the destination",
        )
        assert len(pending) >= 1
        wait_for(  # a few failed attempts against the closed port
            lambda: node.query("select min(attempts) from deliveries")[0][0] >= 2,
            what="every delivery tried twice",
        )
        pacs.start()
        done = wait_jobs(
            node,
            lambda rows: all(j["deliveries"]["delivered"] == 3 for j in rows) and rows,
            "all delivered",
        )
        assert [j["state"] for j in done] == ["succeeded", "succeeded"]
        time.sleep(1.0)  # nothing more arrives
        assert len(pacs.files()) == 6
        assert not torch_mapped(node.proc.pid)
    finally:
        pacs.stop()


def test_failure_status_dead_after_limit_then_retry_delivers(node_factory, tmp_path):
    scp = StatusSCP(0xA700).start()
    try:
        node = node_factory(**node_config(scp.port, export={"max_attempts": 3})).start()
        send(node, tmp_path, "a700", value=5)
        (job,) = wait_jobs(
            node, lambda rows: [j for j in rows if j["deliveries"]["dead"] == 3], "dead"
        )
        assert len(scp.received) == 9  # 3 results × 3 attempts
        table = node.cli("jobs")
        assert table.returncode == 0 and "succeeded" in table.stdout
        line = next(
            row for row in table.stdout.splitlines() if row.strip().startswith(str(job["id"]))
        )
        assert line.split()[6] == "3"  # DEAD column
        scp.status = 0x0000
        out = node.cli("retry", str(job["id"]))
        assert out.returncode == 0 and "3 dead deliveries queued again" in out.stdout
        wait_jobs(node, lambda rows: rows[0]["deliveries"]["delivered"] == 3, "delivered")
        assert len(scp.received) == 12
        scp.status = 0xA900  # does not match the SOP class: dead at once, no retry
        send(node, tmp_path, "a900", value=5)
        wait_jobs(
            node,
            lambda rows: len(rows) == 2 and rows[1]["deliveries"]["dead"] == 3,
            "dead at once",
        )
        assert len(scp.received) == 15
        assert node.cli("retry", "4711").returncode == 1
    finally:
        scp.stop()


def test_kill_9_between_completion_and_delivery_finishes_once_after_restart(node_factory, tmp_path):
    pacs = Storescp(tmp_path / "pacs", free_port())
    node = node_factory(**node_config(pacs.port)).start()
    try:
        send(node, tmp_path, "crash", value=5, description="slow TOY:sleep=4")
        wait_for(lambda: node.query("select state from jobs") == [("running",)], what="running")
        node.kill()  # mid-job: the job is leased, nothing delivered
        (job,) = jobs(node)
        assert job["state"] == "running" and sum(job["deliveries"].values()) == 0
        pacs.start()
        node.start()
        (job,) = wait_jobs(
            node, lambda rows: rows[0]["deliveries"]["delivered"] == 3 and rows, "delivered"
        )
        assert job["state"] == "succeeded" and job["attempts"] == 2
        # and once more: killed after success, before delivery (destination down)
        pacs.stop()
        send(node, tmp_path, "crash2", value=5)
        wait_jobs(
            node,
            lambda rows: len(rows) == 2 and rows[1]["deliveries"]["pending"] == 3,
            "second job waiting for delivery",
        )
        node.kill()
        pacs.start()
        node.start()
        wait_jobs(
            node,
            lambda rows: all(j["deliveries"]["delivered"] == 3 for j in rows),
            "both delivered",
        )
        time.sleep(1.0)
        assert len(pacs.files()) == 6
    finally:
        pacs.stop()


def test_refusal_by_the_pipeline_check_is_shown_and_nothing_is_sent(node_factory, tmp_path):
    scp = StatusSCP(0).start()
    try:
        node = node_factory(**node_config(scp.port)).start()
        send(node, tmp_path, "refuse", value=5, description="TOY:refuse")
        (job,) = wait_jobs(node, lambda rows: rows, "refused job", state="refused")
        assert job["error"] == "refused by toy: series asked to be refused (TOY:refuse)"
        assert job["attempts"] == 0 and sum(job["deliveries"].values()) == 0
        assert scp.received == []
        assert not torch_mapped(node.proc.pid)
    finally:
        scp.stop()

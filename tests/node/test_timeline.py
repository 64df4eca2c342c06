"""A job's per-stage timeline over the real node: storescu → node → toy pipeline → storescp.

The timeline (``dicomnode jobs --json``, ``/api/jobs``) lists every stage once in order with
monotonic times and the completion signal; ``/metrics`` has the stage histograms.
"""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime

from testkit.nodeproc import free_port, storescu, wait_for
from testkit.seriesgen import specs, write_series
from tests.export.peers import Storescp
from tests.export.test_delivery import jobs, node_config

BEFORE_DELIVERY = [
    "received",
    "completed",
    "queued",
    "started",
    "model_ready",
    "inference_done",
    "written",
]


def _get(node, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}{path}", timeout=30) as r:
        return r.read().decode()


def _count(text: str, name: str, labels: dict[str, str]) -> float:
    """The value of sample ``name`` whose labels include ``labels`` (0 when absent)."""
    for line in text.splitlines():
        found = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if not found or found.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2)))
        if labels.items() <= have.items():
            return float(found.group(3))
    return 0.0


def _delivered(node):
    rows = jobs(node)
    if len(rows) == 1 and rows[0]["state"] == "succeeded":
        d = rows[0]["deliveries"]
        if d["delivered"] and not (d["pending"] or d["sending"]):
            return rows[0]
    return None


def test_timeline_of_a_delivered_job_has_every_stage_in_order(node_factory, tmp_path):
    pacs = Storescp(tmp_path / "pacs", free_port()).start()
    try:
        node = node_factory(**node_config(pacs.port)).start()
        (spec,) = specs("timeline", 1)
        files = write_series(spec, tmp_path / "in", value=5)
        out = storescu(node.port, files)
        assert out.returncode == 0, out.stderr
        job = wait_for(lambda: _delivered(node), what="the job delivered")
    finally:
        pacs.stop()
    timeline = job["timeline"]
    stages = [entry["stage"] for entry in timeline]
    delivered = job["deliveries"]["delivered"]
    assert stages == BEFORE_DELIVERY + ["delivered"] * delivered
    times = [datetime.fromisoformat(entry["at"]) for entry in timeline]
    assert times == sorted(times)
    for entry, before, at in zip(timeline[1:], times, times[1:], strict=False):
        assert entry["seconds"] == round((at - before).total_seconds(), 3)
    by_stage = {entry["stage"]: entry for entry in timeline}
    assert by_stage["completed"]["detail"] == "timer"
    assert by_stage["delivered"]["detail"] == "pacs"
    assert {entry["attempt"] for entry in timeline[3:]} == {1}
    # the quiet window (1 s) lies between the last instance and the completion
    assert (times[1] - times[0]).total_seconds() >= 1.0
    assert job["latency_seconds"] == round((times[-1] - times[0]).total_seconds(), 3)
    table = node.cli("jobs").stdout.splitlines()
    assert table[0].split()[8] == "TOTAL"
    assert table[1].split()[8] == f"{job['latency_seconds']:.1f}s"

    (api_job,) = json.loads(_get(node, "/api/jobs"))
    assert api_job["timeline"] == timeline

    def histograms() -> str | None:
        text = _get(node, "/metrics")
        order = list(dict.fromkeys(stages))
        intervals = [f"{a}_to_{b}" for a, b in zip(order, order[1:], strict=False)]
        counts = [
            _count(text, "dicomnode_stage_seconds_count", {"stage": s, "pipeline": "toy"})
            for s in intervals
        ]
        return text if all(c > 0 for c in counts) else None

    text = wait_for(histograms, what="stage histograms", timeout=15)
    written = {"stage": "inference_done_to_written", "pipeline": "toy"}
    assert _count(text, "dicomnode_stage_seconds_count", written) == 1
    to_pacs = {"stage": "written_to_delivered", "pipeline": "toy"}
    assert _count(text, "dicomnode_stage_seconds_count", to_pacs) == delivered
    assert _count(text, "dicomnode_job_latency_seconds_count", {"pipeline": "toy"}) == 1
    latency = _count(text, "dicomnode_job_latency_seconds_sum", {"pipeline": "toy"})
    first_delivery = times[len(BEFORE_DELIVERY)]
    assert abs(latency - (first_delivery - times[0]).total_seconds()) < 0.01
    assert _count(text, "dicomnode_completion_signal_total", {"signal": "timer"}) == 1

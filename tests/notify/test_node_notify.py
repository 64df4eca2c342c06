"""A running node tells a real local webhook about a job and its findings."""

from __future__ import annotations

import hashlib
import hmac
import json

from testkit.dicomgen import CANARY_ID
from testkit.nodeproc import TOY_PIPELINE, storescu, wait_for
from testkit.seriesgen import specs, write_series
from tests.notify.hookserver import hook_server

SECRET = "node-test-shared-secret"


def test_node_posts_signed_job_and_findings_events(node_factory, tmp_path):
    with hook_server() as server:
        node = node_factory(
            workers={"count": 1, "device": "cpu", "poll_seconds": 0.2},
            stability={"series_seconds": 0.5, "study_seconds": 60},
            pipelines={"toy": {"class": TOY_PIPELINE}},
            routes=[
                {
                    "name": "ct-toy",
                    "pipeline": "toy",
                    "when": {"Modality": "CT"},
                    "shadow": True,
                    "priority": "high",
                }
            ],
            notify={
                "poll_seconds": 0.2,
                "webhooks": {
                    "ris": {
                        "url": server.url,
                        "secret": SECRET,
                        "events": ["job.succeeded", "findings"],
                        "findings": [{"kind": "lung_nodule", "min_diameter_mm": 3}],
                    },
                    "big-nodules": {
                        "url": server.url + "/big",
                        "events": ["findings"],
                        "findings": [{"kind": "lung_nodule", "min_diameter_mm": 8}],
                    },
                },
            },
        ).start()
        (spec,) = specs("hook", 1)
        assert storescu(node.port, write_series(spec, tmp_path / "s")).returncode == 0
        received = server.wait_for(2, timeout=60)
        rows = wait_for(
            lambda: (
                node.query("select webhook, event from notifications where state = 'delivered'")
                if len(node.query("select id from notifications where state = 'delivered'")) == 2
                else None
            ),
            "notifications recorded as delivered",
        )
    assert sorted(rows) == [("ris", "findings"), ("ris", "job.succeeded")]
    assert len(node.query("select id from notifications")) == 2
    assert {request.path for request in received} == {"/hook"}  # not the 8 mm webhook
    bodies = {}
    for request in received:
        digest = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-dicomnode-signature"] == f"sha256={digest}"
        assert CANARY_ID.encode() not in request.body
        body = json.loads(request.body)
        bodies[body["event"]] = body
    assert set(bodies) == {"job.succeeded", "findings"}
    for body in bodies.values():
        assert body["study_uid"] == spec.study_uid and body["series_uids"] == [spec.series_uid]
        assert body["job"]["priority"] == "high" and body["job"]["state"] == "succeeded"
        nodules = body["findings"]["lung_nodule"]
        assert nodules["count"] == 1 and nodules["max_diameter_mm"] == 4.0  # the toy's nodule
    ((summary,),) = node.query("select findings from jobs")
    assert json.loads(summary)["lung_nodule"]["max_score"] == 0.9
    kinds = [k for (k,) in node.query("select kind from audit_events where kind like 'notify.%'")]
    assert sorted(kinds) == ["notify.delivered"] * 2 + ["notify.queued"] * 2

"""A completed series that matches no route says so: one ``routing.no_match`` audit row, one
INFO line ``no route matched`` with each route's first failed condition in the words of
``route explain``, and ``no route`` in ``dicomnode status``; a matched series leaves none."""

from __future__ import annotations

import json

from testkit import dicomgen
from testkit.nodeproc import NodeProcess, free_port, storescu, toy_export_config, wait_for


def test_a_series_no_route_matches_is_audited_logged_and_shown(node_factory, tmp_path):
    node: NodeProcess = node_factory(**toy_export_config(free_port(), free_port())).start()
    ct, mr = (
        dicomgen.study("noroute", [2, 2])[0],
        dicomgen.study("noroute-mr", [2], modality="MR")[0],
    )
    ct_files = dicomgen.write_series(ct, tmp_path / "ct")
    mr_files = dicomgen.write_series(mr, tmp_path / "mr")
    assert storescu(node.port, ct_files + mr_files).returncode == 0
    rows = wait_for(
        lambda: (
            node.query("select subject, detail from audit_events where kind = 'routing.no_match'")
            or None
        ),
        "a routing.no_match row",
    )
    wait_for(lambda: node.query("select id from jobs"), "the CT series' job")
    explained = node.cli("route", "explain", str(tmp_path / "mr"))
    reason = "Modality: expected 'CT', got 'MR'"
    assert explained.returncode == 0 and f"no: {reason}" in explained.stdout
    # one row, for the MR series only, in explain's words; the CT series matched: no row
    assert rows == [(mr.series_uid, f"ct-toy: {reason}")]
    assert node.query("select subject from jobs") == [(ct.series_uid,)]

    lines = [json.loads(line) for line in node.log_text().splitlines() if line.startswith("{")]
    said = [line for line in lines if line["message"] == "no route matched"]
    assert len(said) == 1 and said[0]["level"] == "INFO"
    assert said[0]["subject"] == mr.series_uid and said[0]["reasons"] == f"ct-toy: {reason}"

    status = node.cli("status")
    assert status.returncode == 0
    shown = {line.split()[1]: line for line in status.stdout.splitlines()[1:]}
    assert "no route" in shown[mr.series_uid]  # full UIDs
    assert "no route" not in shown[ct.series_uid]
    as_json = {row["series_uid"]: row for row in json.loads(node.cli("status", "--json").stdout)}
    assert as_json[mr.series_uid]["routing"] == "no route"
    assert as_json[mr.series_uid]["series_state"] == "complete"
    assert as_json[ct.series_uid]["routing"] is None
    text = node.log_text() + status.stdout + str(rows)
    assert dicomgen.CANARY_NAME not in text and dicomgen.CANARY_ID not in text

"""The audit trail of a running node: every association (accepted or rejected), every store
failure and every export attempt leaves a row; a rejected association is one Security Alert;
no row holds a patient identifier."""

from __future__ import annotations

import re
from collections import defaultdict

from testkit import dicomgen
from testkit.nodeproc import (
    NodeProcess,
    echo,
    free_port,
    storescu,
    toy_export_config,
    wait_for,
)
from testkit.scu import associate_as, send_raw, write_as_is
from testkit.seriesgen import write_series
from tests.export.peers import Storescp

ALLOWED = ["READYCHECK", "GOODSCU", "STOREFAIL", "STORESCU"]
_ATTEMPT = re.compile(r"^job (\d+): delivery (\d+) to (\w+), attempt (\d+): ")


def _config(pacs_port: int = 0, down_port: int = 0) -> dict:
    return {
        **toy_export_config(pacs_port or free_port(), down_port or free_port()),
        "node": {"allow": [{"ae_title": ae} for ae in ALLOWED]},
    }


def _rows(node: NodeProcess, peer_ae: str) -> list[tuple[str, str | None]]:
    return node.query(
        f"select kind, detail from audit_events where peer like '{peer_ae}@%' order by id"  # noqa: S608 - test constants
    )


def test_associations_store_failures_and_export_attempts_are_audited(node_factory, tmp_path):
    pacs = Storescp(tmp_path / "pacs").start()
    try:
        node = node_factory(**_config(pacs.port)).start()
        assert echo(node.port, ae_title="GOODSCU")
        spec = dicomgen.study("audit", [3])[0]
        mismatch = dicomgen.instance(spec, 9)
        mismatch.file_meta.MediaStorageSOPInstanceUID = dicomgen.uid("audit", "other")
        tmp_path.joinpath("bad").mkdir()
        bad = write_as_is(mismatch, tmp_path / "bad" / "mismatch.dcm")
        assert send_raw(node.port, [bad], ae_title="STOREFAIL") == [0xA900]
        files = write_series(spec, tmp_path / "good", value=5)
        assert storescu(node.port, files).returncode == 0
        deliveries = wait_for(
            lambda: (
                rows
                if len(
                    rows := node.query("select id, destination, state, attempts from deliveries")
                )
                == 6
                and all(state in ("delivered", "dead") for _, _, state, _ in rows)
                else None
            ),
            "every delivery delivered or dead",
            timeout=90,
        )
        audit = node.query("select kind, subject, peer, detail from audit_events order by id")
    finally:
        pacs.stop()

    # One accepted association, one row; nothing else under that peer.
    assert _rows(node, "GOODSCU") == [("association.accepted", None)]
    # A store failure: its association, then one store.failed row with the status.
    (accepted, failed) = _rows(node, "STOREFAIL")
    assert accepted == ("association.accepted", None)
    assert failed[0] == "store.failed" and failed[1].startswith("0xA900 ")
    # Export: one row per attempt of each delivery, the last one tells its fate.
    by_delivery: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for kind, subject, _peer, detail in audit:
        if kind.startswith("delivery."):
            match = _ATTEMPT.match(detail or "")
            assert match, detail
            assert subject and subject.startswith("2.25.")  # the result's SOP Instance UID
            by_delivery[int(match.group(2))].append((kind, int(match.group(4))))
    assert sorted(by_delivery) == sorted(d for d, *_ in deliveries)
    for delivery, destination, state, attempts in deliveries:
        rows = by_delivery[delivery]
        assert [n for _, n in rows] == list(range(1, attempts + 1))
        if destination == "pacs":
            assert state == "delivered" and rows == [("delivery.delivered", 1)]
        else:
            assert state == "dead" and attempts == 3
            assert [k for k, _ in rows] == ["delivery.failed", "delivery.failed", "delivery.dead"]
    # No patient identifiers in any audit row.
    text = repr(audit).casefold()
    for canary in (dicomgen.CANARY_NAME, dicomgen.CANARY_ID, "19010101", "canary"):
        assert canary.casefold() not in text


def test_a_rejected_association_is_one_security_alert(node_factory):
    node = node_factory(**_config()).start()
    established, rejected = associate_as(node.port, "BADSCU")
    assert rejected and not established
    assert echo(node.port, ae_title="GOODSCU")  # the node serves on
    # The row is written after the rejection reached the peer, by whichever SCP process took
    # the association: the echo above may be served by another one first.
    ((kind, detail),) = wait_for(lambda: _rows(node, "BADSCU"), "the BADSCU audit row")
    assert kind == "security.alert"
    assert detail and "calling AE title not allowed" in detail  # the reason

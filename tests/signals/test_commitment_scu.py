"""Storage Commitment against a pynetdicom SCU: the result on the requester's own association,
with the reasons of the instances the node does not hold."""

from __future__ import annotations

import threading
import time
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicomnode.net.commitment import STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
from testkit import dicomgen
from testkit.nodeproc import wait_for
from testkit.scp_processes import elsewhere, holder_of


def _reference(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


class _Reports:
    """Collects the N-EVENT-REPORTs a requester receives."""

    def __init__(self) -> None:
        self.received: list[tuple[int, Dataset]] = []
        self.arrived = threading.Event()

    def handle(self, event: Any) -> tuple[int, None]:
        self.received.append((int(event.request.EventTypeID), event.event_information))
        self.arrived.set()
        return 0x0000, None


def _requester(reports: _Reports) -> AE:
    ae = AE(ae_title="MODALITY")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(STORAGE_COMMITMENT)
    return ae


def test_report_on_the_same_association_lists_missing_and_mismatched(node_factory):
    node = node_factory(
        node={"commitment_wait": 1},
        stability={"series_seconds": 60, "study_seconds": 120},
    ).start()
    kept, other = dicomgen.study("commit-scu", [2, 1])
    sent = [*dicomgen.series(kept), *dicomgen.series(other)]
    reports = _Reports()
    ae = _requester(reports)
    assoc = ae.associate(
        "127.0.0.1",
        node.port,
        ae_title="DICOMNODE",
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handle)],
        # A requester that wants the result on its own association says it is SCU only.
        ext_neg=[build_role(STORAGE_COMMITMENT, scu_role=True)],
    )
    assert assoc.is_established
    try:
        for ds in sent:
            assert assoc.send_c_store(ds).Status == 0x0000
        never_sent = dicomgen.uid("commit-scu", "never-sent")
        request = Dataset()
        request.TransactionUID = dicomgen.uid("commit-scu", "transaction")
        request.ReferencedSOPSequence = [
            *(_reference(CTImageStorage, ds.SOPInstanceUID) for ds in sent[:2]),
            _reference(CTImageStorage, never_sent),
            _reference(MRImageStorage, sent[2].SOPInstanceUID),  # stored as CT
        ]
        asked = time.monotonic()
        status, reply = assoc.send_n_action(
            request, 1, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
        )
        answered = time.monotonic() - asked
        assert status.Status == 0x0000 and not reply
        assert reports.arrived.wait(10), "no N-EVENT-REPORT on the requester's association"
    finally:
        assoc.release()
    assert answered < 0.5  # answered at once; the verdict comes in the report
    ((event_type, info),) = reports.received
    assert event_type == 2  # some failed
    assert info.TransactionUID == request.TransactionUID
    assert [i.ReferencedSOPInstanceUID for i in info.ReferencedSOPSequence] == [
        ds.SOPInstanceUID for ds in sent[:2]
    ]
    failed = {i.ReferencedSOPInstanceUID: i.FailureReason for i in info.FailedSOPSequence}
    assert failed == {never_sent: 0x0112, sent[2].SOPInstanceUID: 0x0119}
    # The series whose listed instances are all stored completed by the commitment, at
    # once; the one with a mismatched instance waits for its timer (60 s).
    rows = node.query("select series_uid, state, completed_by from series")
    assert sorted(rows) == sorted(
        [(kept.series_uid, "complete", "commitment"), (other.series_uid, "open", None)]
    )
    kinds = [
        r[0]
        for r in node.query(
            "select kind from audit_events where kind like 'commitment.%' order by id"
        )
    ]
    assert kinds == ["commitment.requested", "commitment.reported"]


def test_unknown_requester_that_closed_gets_nothing_and_the_node_goes_on(node_factory):
    node = node_factory(node={"commitment_wait": 0}).start()
    reports = _Reports()
    assoc = _requester(reports).associate("127.0.0.1", node.port, ae_title="DICOMNODE")
    assert assoc.is_established
    request = Dataset()
    request.TransactionUID = dicomgen.uid("commit-gone", "transaction")
    request.ReferencedSOPSequence = [
        _reference(CTImageStorage, dicomgen.uid("commit-gone", "absent"))
    ]
    status, _ = assoc.send_n_action(request, 1, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE)
    assert status.Status == 0x0000
    assoc.release()  # at once: the result would need a new association, to an unknown AE

    def unreported() -> list[tuple[Any, ...]]:
        return node.query(
            "select peer, detail from audit_events where kind = 'commitment.unreported'"
        )

    ((peer, detail),) = wait_for(unreported, "the unreported commitment's audit row", 10)
    assert peer.startswith("MODALITY@") and "not a configured source" in detail
    assert "0 committed, 1 failed" in detail
    assert not reports.received
    # An invalid request is refused with a status, and the node still answers.
    again = _requester(reports).associate("127.0.0.1", node.port, ae_title="DICOMNODE")
    status, _ = again.send_n_action(request, 7, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE)
    assert status.Status == 0x0123  # no such action
    again.release()


def test_instances_still_arriving_on_another_association_are_waited_for(node_factory):
    # two SCP processes, the data association on the other one: no in-process wake-up
    node = node_factory(
        node={"commitment_wait": 10, "processes": 2},
        stability={"series_seconds": 60, "study_seconds": 120},
    ).start()
    (spec,) = dicomgen.study("commit-parallel", [4])
    made = list(dicomgen.series(spec))
    reports = _Reports()
    control = _requester(reports).associate(
        "127.0.0.1",
        node.port,
        ae_title="DICOMNODE",
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handle)],
    )
    assert control.is_established
    data = elsewhere(
        node,
        holder_of(node, control),
        lambda: _requester(_Reports()).associate("127.0.0.1", node.port, ae_title="DICOMNODE"),
    )
    try:
        assert data.send_c_store(made[0]).Status == 0x0000
        request = Dataset()
        request.TransactionUID = dicomgen.uid("commit-parallel", "transaction")
        request.ReferencedSOPSequence = [
            _reference(CTImageStorage, ds.SOPInstanceUID) for ds in made
        ]
        status, _ = control.send_n_action(
            request, 1, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
        )
        assert status.Status == 0x0000
        # The rest arrives on the other association after the request.
        assert not reports.arrived.wait(0.5)
        assert node.query("select state from series") == [("open",)]
        for ds in made[1:]:
            assert data.send_c_store(ds).Status == 0x0000
        assert reports.arrived.wait(10), "no report once the last instance arrived"
    finally:
        data.release()
        control.release()
    ((event_type, info),) = reports.received
    assert event_type == 1 and "FailedSOPSequence" not in info
    assert len(info.ReferencedSOPSequence) == len(made)
    assert node.query("select state, completed_by from series") == [("complete", "commitment")]

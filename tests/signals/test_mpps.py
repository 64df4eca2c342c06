"""MPPS from a pynetdicom modality: COMPLETED completes the listed series at once (also when it
comes before the last instance); DISCONTINUED leaves them to the timer; invalid requests get
their PS3.4 F.7 statuses."""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicomnode.net.mpps import MPPS
from testkit import dicomgen
from testkit.nodeproc import wait_for


def _modality(port: int):
    ae = AE(ae_title="CT_SCANNER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(MPPS)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
    assert assoc.is_established
    return assoc


def _step(status: str, performed: dict[str, list[Dataset]] | None = None) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepID = "PPS1"
    if performed is not None:
        series = []
        for series_uid, instances in performed.items():
            item = Dataset()
            item.SeriesInstanceUID = series_uid
            refs = []
            for inst in instances:
                ref = Dataset()
                ref.ReferencedSOPClassUID = inst.SOPClassUID
                ref.ReferencedSOPInstanceUID = inst.SOPInstanceUID
                refs.append(ref)
            item.ReferencedImageSequence = refs
            series.append(item)
        ds.PerformedSeriesSequence = series
    return ds


def _series_rows(node) -> dict[str, tuple[str, str | None, str | None]]:
    rows = node.query("select series_uid, state, completed_by, completed_at from series")
    return {uid: (state, by, at) for uid, state, by, at in rows}


def _all_complete(node):
    def check() -> dict | None:
        rows = _series_rows(node)
        return rows if {state for state, _, _ in rows.values()} == {"complete"} else None

    return check


def test_completed_step_completes_its_series_before_the_timer(node_factory):
    node = node_factory(stability={"series_seconds": 60, "study_seconds": 120}).start()
    first, second = dicomgen.study("mpps-done", [3, 2])
    made = {spec.series_uid: list(dicomgen.series(spec)) for spec in (first, second)}
    pps = dicomgen.uid("mpps-done", "pps")
    assoc = _modality(node.port)
    try:
        status, _ = assoc.send_n_create(_step("IN PROGRESS"), MPPS, pps)
        assert status.Status == 0x0000
        for ds in [*made[first.series_uid], *made[second.series_uid][:1]]:
            assert assoc.send_c_store(ds).Status == 0x0000
        # COMPLETED before the last instance: the last one completes everything.
        status, _ = assoc.send_n_set(_step("COMPLETED", made), MPPS, pps)
        assert status.Status == 0x0000
        step = wait_for(lambda: node.query("select status, settled_at from mpps"), "the step", 5)
        assert step == [("COMPLETED", None)]  # waits for its last instance, not for a timer
        assert {state for state, _, _ in _series_rows(node).values()} == {"open"}
        assert assoc.send_c_store(made[second.series_uid][1]).Status == 0x0000
        rows = wait_for(_all_complete(node), "the last instance to complete the series", 10)
        # A completed step may not be updated any more; an unknown step does not exist.
        status, _ = assoc.send_n_set(_step("DISCONTINUED"), MPPS, pps)
        assert status.Status == 0x0110
        unknown = dicomgen.uid("mpps-done", "unknown")
        status, _ = assoc.send_n_set(_step("COMPLETED"), MPPS, unknown)
        assert status.Status == 0x0112
        status, _ = assoc.send_n_create(_step("IN PROGRESS"), MPPS, pps)
        assert status.Status == 0x0111  # duplicate
        status, _ = assoc.send_n_create(_step("COMPLETED"), MPPS, unknown)
        assert status.Status == 0x0106  # created only IN PROGRESS
        # COMPLETED after every instance (the usual order): complete at once.
        (later,) = dicomgen.study("mpps-after", [2])
        after = list(dicomgen.series(later))
        pps_after = dicomgen.uid("mpps-after", "pps")
        assert assoc.send_n_create(_step("IN PROGRESS"), MPPS, pps_after)[0].Status == 0x0000
        for ds in after:
            assert assoc.send_c_store(ds).Status == 0x0000
        performed = _step("COMPLETED", {later.series_uid: after})
        assert assoc.send_n_set(performed, MPPS, pps_after)[0].Status == 0x0000
        rows_after = wait_for(_all_complete(node), "the second step's series", 10)
    finally:
        assoc.release()
    assert rows_after[later.series_uid][1] == "mpps"
    del rows_after[later.series_uid]
    assert rows_after == rows  # the first step's series kept their completion
    assert {by for _, by, _ in rows.values()} == {"mpps"}
    studies = node.query("select study_uid, state, completed_by from studies")
    assert sorted(studies) == sorted(
        [(first.study_uid, "complete", "mpps"), (later.study_uid, "complete", "mpps")]
    )
    (last,) = node.query(
        "select max(received_at) from instances where path like '" + first.study_uid + "%'"
    )[0]
    completed = max(datetime.fromisoformat(at) for _, _, at in rows.values())
    assert (completed - datetime.fromisoformat(last)).total_seconds() < 5  # timer: 60 s
    assert node.query("select status, settled_at is not null from mpps") == [("COMPLETED", 1)] * 2
    kinds = [
        r[0]
        for r in node.query("select kind from audit_events where kind like 'mpps.%' order by id")
    ]
    assert kinds == ["mpps.created", "mpps.updated"] * 2


def test_discontinued_step_leaves_the_series_to_the_timer(node_factory):
    node = node_factory(stability={"series_seconds": 3, "study_seconds": 4}).start()
    (spec,) = dicomgen.study("mpps-stop", [2])
    made = list(dicomgen.series(spec))
    pps = dicomgen.uid("mpps-stop", "pps")
    assoc = _modality(node.port)
    try:
        assert assoc.send_n_create(_step("IN PROGRESS"), MPPS, pps)[0].Status == 0x0000
        for ds in made:
            assert assoc.send_c_store(ds).Status == 0x0000
        status, _ = assoc.send_n_set(_step("DISCONTINUED", {spec.series_uid: made}), MPPS, pps)
        assert status.Status == 0x0000
    finally:
        assoc.release()
    rows = wait_for(_all_complete(node), "the timer to complete the series", 10)
    _, by, at = rows[spec.series_uid]
    assert by == "timer"
    (last,) = node.query("select max(received_at) from instances")[0]
    quiet = (datetime.fromisoformat(at) - datetime.fromisoformat(last)).total_seconds()
    assert quiet >= 3
    assert node.query("select status, settled_at is not null from mpps") == [("DISCONTINUED", 1)]

"""A corpus of malformed data sets replayed over the wire to one running node.

Every request gets a DIMSE status (a failure status unless the entry is valid-but-odd DICOM)
or an abort; afterwards the node answers C-ECHO and /healthz, stores a valid series, holds no
spool files once its reaper ran, is still running and logged no traceback.
"""

from __future__ import annotations

import time
import urllib.request
from io import BytesIO

import pytest
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.sop_class import CTImageStorage, MRImageStorage  # type: ignore[attr-defined]

from dicomnode.net.peer import no_delay
from testkit import dicomgen
from testkit.fuzzing import FAILURE_RANGES
from testkit.malformed import Malformed, corpus
from testkit.nodeproc import echo

_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless]
_TIMEOUT = 10  # seconds a request may wait for its response: no hang goes unnoticed


def _associate(port: int) -> Association:
    ae = AE(ae_title="MALFORMED")
    for sop_class in (CTImageStorage, MRImageStorage):
        for syntax in _SYNTAXES:
            ae.add_requested_context(sop_class, syntax)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = _TIMEOUT
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
    assert assoc.is_established
    no_delay(assoc)  # PITFALLS: Nagle holds each request after the first for ~45 ms
    return assoc


def _send(assoc: Association, entry: Malformed) -> int | None:
    """Send the entry's bytes as they are (no encoding, no UID checks); the status or None.

    ``send_c_store`` would parse or re-encode the data set and validate the UIDs; this builds
    the request primitive itself and sends the bytes in P-DATA as given.
    """
    context = next(
        cx
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == CTImageStorage and cx.transfer_syntax[0] == entry.transfer_syntax
    )
    request = C_STORE()
    request.MessageID = 1
    request.Priority = 2
    request._affected_sop_class_uid = UID(entry.sop_class_uid)  # unvalidated on purpose
    request._affected_sop_instance_uid = UID(entry.sop_instance_uid)
    request.DataSet = BytesIO(entry.data)
    assoc._reactor_checkpoint.clear()  # as send_c_store: the reactor pauses, we read
    while not assoc._is_paused and assoc.is_alive():
        time.sleep(0.001)
    try:
        assoc.dimse.send_msg(request, context.context_id)  # type: ignore[arg-type]
        if not entry.data:  # pynetdicom sends no fragment for an empty data set: one, empty
            pdata = P_DATA()
            pdata.presentation_data_value_list = [[context.context_id, b"\x02"]]
            assoc.dul.send_pdu(pdata)
        _, response = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    status = getattr(response, "Status", None)
    return None if status is None else int(status)


def _closed_by_peer(assoc: Association, wait: float = 5) -> bool:
    deadline = time.monotonic() + wait
    while assoc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    closed = not assoc.is_alive()
    assoc.abort()
    return closed


def _healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return int(response.status)


@pytest.fixture
def node(node_factory):
    return node_factory().start()


def test_malformed_corpus_is_answered_and_the_node_serves_on(node, tmp_path):
    entries = corpus()
    assert len(entries) >= 30
    answers: dict[str, int | None] = {}
    assoc = _associate(node.port)
    for entry in entries:
        if not assoc.is_established:
            assoc = _associate(node.port)
        answers[entry.name] = _send(assoc, entry)
        if answers[entry.name] is None:
            # no response within dimse_timeout: allowed only if the node closed or aborted the
            # association (a node that hangs keeps it open)
            assert _closed_by_peer(assoc), f"{entry.name}: neither answered nor closed"
    if assoc.is_established:
        assoc.release()

    wrong = []
    for entry in entries:
        status = answers[entry.name]
        if status is None:
            continue  # aborted: allowed for any input
        failed = any(low <= status <= high for low, high in FAILURE_RANGES)
        if not (failed or (entry.success_ok and status == 0)):
            wrong.append((entry.name, hex(status)))
    assert wrong == []
    failures = sum(1 for s in answers.values() if s not in (None, 0))
    assert failures >= len(entries) - 8, answers  # most are answered, not aborted

    assert node.proc is not None and node.proc.poll() is None
    assert echo(node.port)
    assert _healthz(node.http_port) == 200
    spec = dicomgen.study("after-corpus", [3])[0]
    paths = dicomgen.write_series(spec, tmp_path / "valid")
    assoc = _associate(node.port)
    try:
        assert [int(assoc.send_c_store(path).Status) for path in paths] == [0, 0, 0]
    finally:
        assoc.release()
    deadline = time.monotonic() + 20  # the node reaps unowned spool files every 5 s
    while list((node.store / ".incoming").iterdir()):
        assert time.monotonic() < deadline, list((node.store / ".incoming").iterdir())
        time.sleep(0.5)
    stored = {p.name for p in node.stored_files()}
    assert {f"{dicomgen.uid(spec.series_uid, n)}.dcm" for n in range(3)} <= stored
    log = node.log_text()
    assert "Traceback" not in log and "store failed unexpectedly" not in log
    assert node.proc.poll() is None

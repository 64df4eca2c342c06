"""pynetdicom's reactor race on a requested association (its issue #875): a response the
reactor takes off the DIMSE queue before the waiting ``send_c_store`` reaches the request
anyway (``dicomnode.net.peer.keep_responses``), instead of a DIMSE timeout and a resend."""

from __future__ import annotations

import time

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.association import Association

from dicomnode.net.peer import keep_responses, no_delay
from tests.export.peers import StatusSCP


def _ct() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "CT"
    return ds


def _associate(scp: StatusSCP) -> Association:
    """An association to ``scp`` as the node's senders make one (3 s timeouts)."""
    ae = AE(ae_title="NODE")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 3
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="PACS")
    assert assoc.is_established
    no_delay(assoc)
    keep_responses(assoc)
    return assoc


def test_a_response_the_reactor_takes_still_reaches_the_c_store() -> None:
    scp = StatusSCP(0x0000).start()
    try:
        assoc = _associate(scp)
        send_msg = assoc.dimse.send_msg
        taken = []

        def send_and_lose_the_race(primitive, context_id):
            send_msg(primitive, context_id)
            # what pynetdicom's reactor does when it wins: the response is its to serve
            context, response = assoc.dimse.msg_queue.get(timeout=3)
            taken.append(response.msg_type)
            assoc._serve_request(response, context)

        assoc.dimse.send_msg = send_and_lose_the_race
        try:
            started = time.monotonic()
            statuses = [assoc.send_c_store(_ct()) for _ in range(3)]
            waited = time.monotonic() - started
        finally:
            if assoc.is_established:
                assoc.release()
        assert taken == ["C-STORE"] * 3  # the race, lost each time
        assert [int(s.Status) if "Status" in s else None for s in statuses] == [0, 0, 0]
        assert waited < 3  # no DIMSE timeout waited out
        assert len(scp.received) == 3  # and nothing sent twice
    finally:
        scp.stop()


def test_a_response_nobody_awaits_is_still_dropped() -> None:
    scp = StatusSCP(0x0000).start()
    try:
        assoc = _associate(scp)
        taken = []
        send_msg = assoc.dimse.send_msg

        def send_and_keep(primitive, context_id):
            send_msg(primitive, context_id)
            taken.append(assoc.dimse.msg_queue.get(timeout=3))

        assoc.dimse.send_msg = send_and_keep
        try:
            assoc.send_c_store(_ct())  # its response taken here: a DIMSE timeout, then abort
        finally:
            if assoc.is_established:
                assoc.release()
        context, late = taken[0]
        assert assoc._reactor_checkpoint.is_set()  # no request in progress any more
        assoc._serve_request(late, context)  # a late response: not queued for the next one
        assert assoc.dimse.msg_queue.empty()
    finally:
        scp.stop()

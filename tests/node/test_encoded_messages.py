"""What the receive path encodes without pydicom is byte for byte what pydicom encodes.

C-STORE responses (dicomnode.net.responses) against pynetdicom's own encoding, spool files'
File Meta Information (dicomnode.net.filemeta) against pydicom's, and the association's
copy of the server's presentation contexts (dicomnode.net.server.ContextList) against
``deepcopy``; then a node answers a pynetdicom SCU's C-STOREs with the encoded responses.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicomnode.net import filemeta
from dicomnode.net.responses import encode_store_response
from dicomnode.net.scp import StorageSCP
from dicomnode.net.server import ContextList
from testkit import dicomgen
from testkit.inprocess import storage_scp

CT = "1.2.840.10008.5.1.4.1.1.2"


def _pynetdicom_response(message_id: int, status: int, cls: str | None, inst: str | None) -> bytes:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.Status = status
    primitive.AffectedSOPClassUID = cls
    primitive.AffectedSOPInstanceUID = inst
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    (pdata,) = message.encode_msg(1, 16384)
    ((_, value),) = pdata.presentation_data_value_list
    assert value[:1] == b"\x03"  # the whole command in one fragment
    return bytes(value[1:])


@pytest.mark.parametrize(
    ("message_id", "status", "cls", "inst"),
    [
        (1, 0x0000, CT, "1.2.3.4"),  # even-length instance UID
        (65535, 0xA900, CT, "1.2.3.45"),  # odd: padded with NUL
        (7, 0xC000, "1.2.840.10008.5.1.4.1.1.4", "2.25." + "9" * 59),  # 64 characters
        (300, 0xA700, None, None),  # no Affected SOP UIDs (a refused non-C-STORE request)
    ],
)
def test_store_response_is_what_pynetdicom_encodes(
    message_id: int, status: int, cls: str | None, inst: str | None
) -> None:
    assert encode_store_response(message_id, status, cls, inst) == _pynetdicom_response(
        message_id, status, cls, inst
    )


def _pydicom_file_meta(cls: str, inst: str, syntax: str) -> bytes:
    buffer = io.BytesIO()
    meta = create_file_meta(sop_class_uid=cls, sop_instance_uid=inst, transfer_syntax=syntax)
    write_file_meta_info(buffer, meta)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("cls", "inst", "syntax"),
    [
        (CT, "1.2.3.4", ExplicitVRLittleEndian),
        (CT, "1.2.3.45", ImplicitVRLittleEndian),
        ("1.2.840.10008.5.1.4.1.1.4", "2.25." + "1" * 59, "1.2.840.10008.1.2.4.50"),
    ],
)
def test_file_meta_is_what_pydicom_writes(cls: str, inst: str, syntax: str) -> None:
    expected = _pydicom_file_meta(cls, inst, syntax)
    assert filemeta.encode_file_meta(cls, inst, syntax) == expected
    written = io.BytesIO()
    made = filemeta._create_file_meta(
        sop_class_uid=cls, sop_instance_uid=inst, transfer_syntax=syntax
    )
    assert isinstance(made, filemeta.EncodedFileMeta)
    filemeta._write_file_meta_info(written, made)
    assert written.getvalue() == expected


@pytest.mark.parametrize("inst", ["", "2.25." + "1" * 61, "1.2.x", "1.2\\3.4"])
def test_file_meta_of_an_odd_uid_is_left_to_pydicom(inst: str) -> None:
    made = filemeta._create_file_meta(
        sop_class_uid=CT, sop_instance_uid=inst, transfer_syntax=ExplicitVRLittleEndian
    )
    assert isinstance(made, FileMetaDataset)  # pydicom's, with its validation and warnings


def test_context_list_copies_are_equal_and_independent() -> None:
    contexts = ContextList()
    for uid in (CT, "1.2.840.10008.1.1"):
        context = PresentationContext()
        context.abstract_syntax = uid
        context.transfer_syntax = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        contexts.append(context)
    copied = copy.deepcopy(contexts)
    expected = copy.deepcopy(list(contexts))  # what pynetdicom's deepcopy gives
    assert [vars(c) for c in copied] == [vars(c) for c in expected]
    copied[0].add_transfer_syntax("1.2.840.10008.1.2.4.50")
    copied[1].context_id = 3
    assert contexts[0].transfer_syntax == [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    assert contexts[1].context_id is None


@pytest.fixture
def scp(tmp_path: Path):
    node = storage_scp(tmp_path)
    node.start()
    yield node
    node.stop()


def _associate(port: int) -> Association:
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
    assert assoc.is_established
    return assoc


def test_node_answers_stores_with_encoded_responses(
    scp: StorageSCP, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded_by_pynetdicom: list[object] = []
    encode_msg = C_STORE_RSP.encode_msg

    def spy(self: C_STORE_RSP, *args: Any) -> Any:
        encoded_by_pynetdicom.append(self)
        return encode_msg(self, *args)

    monkeypatch.setattr(C_STORE_RSP, "encode_msg", spy)
    good, other = dicomgen.series(dicomgen.study("encoded", [2])[0])
    del other.SeriesInstanceUID  # refused: 0xC000
    assoc = _associate(scp.port)
    received: list[Any] = []  # the responses as the SCU's pynetdicom decoded them
    assoc.bind(evt.EVT_DIMSE_RECV, lambda event: received.append(event.message.command_set))
    try:
        assert int(assoc.send_c_store(good, msg_id=7).Status) == 0
        assert int(assoc.send_c_store(other, msg_id=65535).Status) == 0xC000
    finally:
        assoc.release()
    stored, refused = received
    assert stored.AffectedSOPInstanceUID == good.SOPInstanceUID
    assert refused.AffectedSOPInstanceUID == other.SOPInstanceUID
    assert stored.AffectedSOPClassUID == refused.AffectedSOPClassUID == CT
    assert (stored.MessageIDBeingRespondedTo, refused.MessageIDBeingRespondedTo) == (7, 65535)
    assert (stored.Status, refused.Status) == (0, 0xC000)
    assert encoded_by_pynetdicom == []


def test_a_dimse_sent_handler_gets_pynetdicoms_message(scp: StorageSCP) -> None:
    (instance,) = dicomgen.series(dicomgen.study("handler", [1])[0])
    assoc = _associate(scp.port)
    seen: list[object] = []
    try:
        (acceptor,) = [a for a in scp.ae.active_associations if a.is_acceptor]
        acceptor.bind(evt.EVT_DIMSE_SENT, lambda event: seen.append(event.message))
        assert int(assoc.send_c_store(instance).Status) == 0
    finally:
        assoc.release()
    (message,) = seen
    assert isinstance(message, C_STORE_RSP)
    assert message.command_set.AffectedSOPInstanceUID == instance.SOPInstanceUID

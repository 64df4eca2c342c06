"""Receiving peers of ``dicomnode demo``: Orthanc when installed, else a built-in Storage SCP.

Both listen on loopback only (Orthanc's HTTP; its DICOM port accepts stores from the node's AE
at 127.0.0.1 only), keep what they receive in a temporary folder and answer
:meth:`Peer.received`: the result objects they hold for a study, with the time each arrived.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

import pydicom
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomnode.demo.orthanc import ORTHANC, Orthanc
from dicomnode.dimse import Status

__all__ = ["ORTHANC", "BuiltinReceiver", "OrthancPeer", "Peer", "Received", "valid_uid"]

log = logging.getLogger(__name__)

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class Received:
    """One object a peer holds: its study, Part 10 bytes and arrival time (``time.time()``)."""

    study_uid: str
    sop_instance_uid: str
    modality: str
    data: bytes
    arrived: float


class Peer(Protocol):
    """What the demo needs from a receiving peer."""

    name: str
    ae_title: str

    @property
    def port(self) -> int:
        """Its DICOM port on loopback."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def received(self, study_uid: str) -> list[Received]:
        """Objects held for ``study_uid``, oldest first."""
        ...


class BuiltinReceiver:
    """A small pynetdicom Storage SCP on loopback that keeps every object in memory.

    Parameters
    ----------
    ae_title : str
        Its AE title (the node's destination).
    """

    name = "built-in receiver"

    def __init__(self, ae_title: str = "DEMOPACS"):
        self.ae_title = ae_title
        self.port = 0
        self._lock = threading.Lock()
        self._items: list[Received] = []
        self._server: Any = None

    def start(self) -> None:
        """Listen on a free loopback port."""
        _config.LOG_REQUEST_IDENTIFIERS = False
        _config.LOG_RESPONSE_IDENTIFIERS = False
        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        ae.maximum_pdu_size = 0
        self._server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        self.port = int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_store(self, event: evt.Event) -> int:
        """Keep the dataset; never raises (a DIMSE status instead)."""
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            buffer = BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            item = Received(
                study_uid=str(ds.StudyInstanceUID),
                sop_instance_uid=str(ds.SOPInstanceUID),
                modality=str(ds.get("Modality", "")),
                data=buffer.getvalue(),
                arrived=time.time(),
            )
        except MemoryError:
            return Status.OUT_OF_RESOURCES
        except Exception as exc:  # any decoding problem becomes "cannot understand"
            log.warning("receiver: unreadable dataset: %s", type(exc).__name__)
            return Status.CANNOT_UNDERSTAND
        with self._lock:
            self._items.append(item)
        return Status.SUCCESS

    def received(self, study_uid: str) -> list[Received]:
        """Objects held for ``study_uid``, oldest first."""
        with self._lock:
            return [item for item in self._items if item.study_uid == study_uid]


class OrthancPeer:
    """Orthanc with a temporary config and storage; the node is its only allowed sender.

    Parameters
    ----------
    root : Path
        Its folder (config, storage, log).
    sender_ae : str
        The AE title allowed to store (the node's).
    """

    name = "Orthanc"

    def __init__(self, root: Path, sender_ae: str, ae_title: str = "ORTHANC"):
        self.ae_title = ae_title
        self.orthanc = Orthanc(
            root,
            {"node": (sender_ae, "127.0.0.1", 104)},
            ae_title=ae_title,
            name="dicomnode-demo-pacs",
            known_senders_only=True,
        )
        self._cache: dict[str, Received] = {}

    @property
    def port(self) -> int:
        """Orthanc's DICOM port (0 before :meth:`start`)."""
        return self.orthanc.dicom_port

    def start(self, timeout: float = 30) -> None:
        """Start Orthanc and wait for its REST API; RuntimeError when it does not come up."""
        self.orthanc.start(timeout)

    def stop(self) -> None:
        """Terminate Orthanc and wait for it."""
        self.orthanc.stop()

    def received(self, study_uid: str) -> list[Received]:
        """Objects held for ``study_uid``; arrival is when this peer first saw them listed."""
        items = []
        for entry in self.orthanc.instances_of_study(study_uid):
            orthanc_id = str(entry["ID"])
            if orthanc_id not in self._cache:
                data = self.orthanc.file(orthanc_id)
                ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
                self._cache[orthanc_id] = Received(
                    study_uid=study_uid,
                    sop_instance_uid=str(ds.SOPInstanceUID),
                    modality=str(ds.get("Modality", "")),
                    data=data,
                    arrived=time.time(),
                )
            items.append(self._cache[orthanc_id])
        return sorted(items, key=lambda item: item.arrived)


def valid_uid(text: str) -> bool:
    """Whether ``text`` is a DICOM UID (safe as a file name part)."""
    return len(text) <= 64 and bool(_UID.match(text))
